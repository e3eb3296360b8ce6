#!/bin/sh
# Installs a pinned @openai/codex release into the repository's git-ignored
# cache (.cache/codex-cli/<version>/) and prints the path of its native binary.
#
# Why a per-version prefix: the integration tests run several pinned CLI
# versions side by side, and a re-run must not touch the network when the
# version is already there (idempotent: a completed install leaves a marker).
#
# Usage: scripts/install-codex-cli.sh [version ...]
# Without arguments installs every version in integration/testdata/cli/versions.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${CODEX_CLI_CACHE:-$root/.cache/codex-cli}"

if [ "$#" -eq 0 ]; then
	set -- $(grep -v '^#' "$root/integration/testdata/cli/versions" | tr -s ' \n' ' ')
fi

# find_bin prints the native codex binary of an installed prefix. The npm
# package is a node launcher around a per-platform native binary; its layout
# moved between releases (vendor/ inside @openai/codex, later a separate
# @openai/codex-linux-<arch> package), so search rather than hard-code.
find_bin() {
	find "$1/node_modules" -type f -path '*/vendor/*/codex/codex' 2>/dev/null | grep "$triple" | head -n 1
	find "$1/node_modules" -type f -path '*/vendor/*/bin/codex' 2>/dev/null | grep "$triple" | head -n 1
}

case "$(uname -m)" in
x86_64 | amd64) triple=x86_64-unknown-linux-musl ;;
aarch64 | arm64) triple=aarch64-unknown-linux-musl ;;
*) echo "install-codex-cli: unsupported machine $(uname -m)" >&2; exit 2 ;;
esac

# One install at a time per cache: the test suites call this script from
# parallel tests and processes, and CI calls it before them.
mkdir -p "$cache"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache/.lock"
	flock 9
fi

for v in "$@"; do
	case "$v" in
	*[!0-9A-Za-z.-]* | "") echo "install-codex-cli: bad version '$v'" >&2; exit 2 ;;
	esac
	prefix="$cache/$v"
	if [ ! -f "$prefix/.installed" ]; then
		command -v npm >/dev/null 2>&1 || { echo "install-codex-cli: npm not found" >&2; exit 3; }
		rm -rf "$prefix.tmp"
		mkdir -p "$prefix.tmp"
		# --ignore-scripts: the package needs no install scripts; the native
		# binary ships as an (optional) dependency tarball.
		if ! npm install --prefix "$prefix.tmp" --no-audit --no-fund --no-save \
			--ignore-scripts --loglevel=error "@openai/codex@$v" >&2; then
			rm -rf "$prefix.tmp"
			echo "install-codex-cli: npm install @openai/codex@$v failed" >&2
			exit 3
		fi
		rm -rf "$prefix"
		mv "$prefix.tmp" "$prefix"
		bin=$(find_bin "$prefix" | head -n 1)
		if [ -z "$bin" ]; then
			echo "install-codex-cli: no native codex binary for $triple in @openai/codex@$v" >&2
			exit 3
		fi
		chmod a+rx "$bin"
		printf '%s\n' "$v" >"$prefix/.installed"
	fi
	bin=$(find_bin "$prefix" | head -n 1)
	[ -n "$bin" ] || { echo "install-codex-cli: installed $v has no binary" >&2; exit 3; }
	echo "$bin"
done
