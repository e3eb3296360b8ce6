#!/bin/bash
# The generic boot steps of the seed image's start.sh, for the boot benchmark:
# prepare CODEX_HOME, write CODEX_AUTH_JSON to auth.json (as start.sh did, at
# every boot), append the store keys to config.toml, prime with the seed
# watchdog's --once, then exec the command. Left out, because they would only
# add to the seed's time: gosu (the benchmark runs both programs as the same
# user), `codex --version`, the recursive chown and the background loop.
#
# Usage: SEED_SCRIPT=path/to/codex_auth_refresh.sh seed-start.sh COMMAND [ARGS...]
set -u
: "${CODEX_HOME:?CODEX_HOME must be set}"
: "${SEED_SCRIPT:?SEED_SCRIPT must name the seed watchdog script}"

install -d -m 0700 "$CODEX_HOME" "$CODEX_HOME/sessions"
auth="${CODEX_AUTH_JSON:-${CODEX_CHATGPT_AUTH_JSON:-}}"
if [ -n "$auth" ]; then
	printf '%s' "$auth" >"$CODEX_HOME/auth.json"
	chmod 600 "$CODEX_HOME/auth.json"
	cfg="$CODEX_HOME/config.toml"
	touch "$cfg"
	grep -q '^cli_auth_credentials_store' "$cfg" || echo 'cli_auth_credentials_store = "file"' >>"$cfg"
	grep -q '^forced_login_method' "$cfg" || echo 'forced_login_method = "chatgpt"' >>"$cfg"
fi
unset auth
if [ -s "$CODEX_HOME/auth.json" ]; then
	bash "$SEED_SCRIPT" --once || echo "seed-start: prime failed; starting anyway" >&2
fi
exec "$@"
