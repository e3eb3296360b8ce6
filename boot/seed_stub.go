package boot

import (
	"context"
	"errors"
	"strings"
)

// SeedAuth is a placeholder until authwatch.Home (the CLI's lock protocol and
// atomic commit) exists; the real rules live in seed.go.
func SeedAuth(ctx context.Context, o SeedOptions) (SeedResult, error) {
	for _, n := range AuthVariables() {
		if v, ok := LookupEnv(o.Environ, n); ok && strings.TrimSpace(v) != "" {
			return SeedResult{}, errors.New("seeding auth.json is not wired yet")
		}
	}
	return SeedResult{Action: SeedNone}, nil
}
