package boot

import (
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// CredentialVariables are the variables whose presence the boot log reports,
// by name only: their values are secrets.
func CredentialVariables() []string {
	return append(append(apiKeyVariables(), AuthVariables()...), "MOLECULE_ORG_ID")
}

// apiKeyVariables are the API keys a child may log in with instead of auth.json.
func apiKeyVariables() []string { return []string{"OPENAI_API_KEY", "MINIMAX_API_KEY", "KIMI_API_KEY"} }

// contextVariables are not secrets and are logged with their values (a URL
// without its user information, query or fragment, which may carry one).
func contextVariables() []string { return []string{"WORKSPACE_ID", "PLATFORM_URL"} }

// LogContext writes the one boot line an operator reads first: who the
// launcher runs as and will run the child as, the command, the workspace, and
// which credential variables are set. Credential values never appear; an empty
// variable counts as unset.
func LogContext(log hclog.Logger, target *User, command []string, environ []string) {
	if log == nil {
		return
	}
	args := []any{"uid", os.Getuid(), "gid", os.Getgid()}
	if target != nil {
		args = append(args, "user", target.Name, "user_uid", target.UID, "user_gid", target.GID)
	}
	args = append(args, "command", command)
	for _, name := range contextVariables() {
		if v, ok := LookupEnv(environ, name); ok && v != "" {
			args = append(args, name, secreturl.Shown(v))
		}
	}
	var set, unset []string
	for _, name := range CredentialVariables() {
		if v, ok := LookupEnv(environ, name); ok && v != "" {
			set = append(set, name)
		} else {
			unset = append(unset, name)
		}
	}
	args = append(args, "credentials_set", set, "credentials_unset", unset)
	log.Info("starting", args...)
}
