#!/bin/sh
# Benchmark codex-launch as a container init beside tini, dumb-init and
# catatonit (Debian packages), in one run on this machine. Needs root (PID
# namespaces). Prints a Markdown table; see docs/pid1-compare.md.
#
#   bench/pid1/run.sh                 # full run (idle CPU over 60 s)
#   bench/pid1/run.sh -idle 5s        # quicker; any flag of `pid1 run`
set -eu
cd "$(dirname "$0")/../.."

need=""
for c in tini dumb-init catatonit hyperfine unshare; do
	command -v "$c" >/dev/null 2>&1 || need="$need $c"
done
if [ -n "$need" ]; then
	pkgs=$(echo "$need" | sed 's/unshare/util-linux/')
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The launcher as shipped: static, stripped.
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/codex-launch" ./cmd/codex-launch
CGO_ENABLED=0 go build -trimpath -o "$out/pid1" ./bench/pid1

echo "machine: $(nproc) cores, $(uname -r); $(tini --version); dumb-init $(dumb-init --version 2>&1 | head -1); catatonit $(catatonit --version 2>&1 | head -1); $(hyperfine --version); $(go version)" >&2
"$out/pid1" run -launcher "$out/codex-launch" \
	-tini "$(command -v tini)" -dumb-init "$(command -v dumb-init)" -catatonit "$(command -v catatonit)" "$@"
