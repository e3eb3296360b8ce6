// Package boot does what a container entrypoint must do before the Codex CLI
// (or the runtime that starts it) may run: load secrets from an env directory,
// log what the container was given (names, never values), prepare CODEX_HOME
// for the user the CLI runs as, materialise CODEX_AUTH_JSON into auth.json
// without ever replacing a newer rotated credential, make the CLI read that
// file, and drop root like gosu.
//
// Every step is exported on its own so it can be tested and reused; Run does
// them in the one order that is safe: everything that needs root happens
// first, and everything that writes a credential happens after the drop, so
// each file the CLI must later rewrite already belongs to the CLI's user (a
// root-owned auth.json or lock file burns a login: the CLI redeems its refresh
// token and then cannot commit the result).
package boot
