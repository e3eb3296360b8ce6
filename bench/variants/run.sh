#!/bin/sh
# What the levers left would buy on issues #2 and #4's 20x targets: builds
# codex-launch as shipped and three variants that each give something up,
# then runs the committed refresh and boot benchmarks against each, the
# variants interleaved with the shipped binary, round after round. The
# variants are measurement builds only (go build -overlay; nothing of them is
# in the module):
#
#   shipped   codex-launch as the image builds it
#   nopg      no PostgreSQL driver (fleet mode's pgx replaced by
#             bench/variants/pgstore.stub): what linking pgx costs each start
#   nowait    the child starts without waiting for the ~60 signal
#             registrations: a signal sent in its first milliseconds may be lost
#   both      nopg and nowait together
#
# Each line is one benchmark run: codex-launch's time and the seed's
# ratio to it, measured side by side in that run (see bench/refresh and
# bench/boot for the full tables). Compare the variants' ratios with the
# shipped rows of the neighbouring rounds, not absolute times.
#
#   bench/variants/run.sh            # 3 rounds, -n 60 (refresh) and -n 40 (boot)
#   bench/variants/run.sh 5          # 5 rounds
#   bench/variants/run.sh -build DIR # only build the four binaries into DIR
#                                    # (variants_test.go keeps this working)
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
if [ "${1:-}" = -build ]; then
	out=${2:?-build needs a directory}
	mkdir -p "$out"
	rounds=0
else
	rounds=${1:-3}
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

# nowait: the launcher without its wait for the registrations (the first line
# of signals.Forwarder.Hold, which the launcher calls right before it starts
# the child). The edit must match exactly once, or the variant would silently
# measure the shipped code.
awk 'hold && /^\tf\.WaitRegistered\(\)$/ { print "\t// variant: the child does not wait for the registrations"; hold = 0; next }
	{ hold = ($0 ~ /^func \(f \*Forwarder\) Hold\(\) \{$/) } { print }' \
	signals/forward.go >"$out/forward.go"
if [ "$(grep -c '^	// variant: the child does not wait' "$out/forward.go")" != 1 ]; then
	echo "variants: Forwarder.Hold no longer starts with f.WaitRegistered() in signals/forward.go; update this script" >&2
	exit 1
fi
cp bench/variants/pgstore.stub "$out/pgstore.go"
printf '{"Replace":{"%s/fleet/pgstore/pgstore.go":"%s/pgstore.go"}}' "$root" "$out" >"$out/nopg.json"
printf '{"Replace":{"%s/signals/forward.go":"%s/forward.go"}}' "$root" "$out" >"$out/nowait.json"
printf '{"Replace":{"%s/fleet/pgstore/pgstore.go":"%s/pgstore.go","%s/signals/forward.go":"%s/forward.go"}}' \
	"$root" "$out" "$root" "$out" >"$out/both.json"

build() { # name [overlay]
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ${2:+-overlay "$2"} -o "$out/$1" ./cmd/codex-launch
}
build shipped
build nopg "$out/nopg.json"
build nowait "$out/nowait.json"
build both "$out/both.json"
if go version -m "$out/nopg" | grep -q jackc; then
	echo "variants: the nopg build still links pgx" >&2
	exit 1
fi
if [ "$rounds" = 0 ]; then
	exit 0
fi
CGO_ENABLED=0 go build -o "$out/refresh-bench" ./bench/refresh
CGO_ENABLED=0 go build -o "$out/boot-bench" ./bench/boot

echo "# $(nproc) cores, $(uname -r), $(go version); $rounds rounds"
echo
echo "| round | benchmark and case | build | codex-launch | seed ÷ codex-launch |"
echo "|---|---|---|---|---|"
r=1
while [ "$r" -le "$rounds" ]; do
	for v in shipped nopg shipped both; do
		# bench/refresh: the CPU mean of each path and its ratio. The run
		# writes a file first, so that a failing run stops this script (with
		# its error) rather than leaving its rows out.
		"$out/refresh-bench" -n 60 -launcher "$out/$v" >"$out/result"
		awk -v r="$r" -v v="$v" -F'|' '
			$3 ~ /codex-launch/ { cpu[$2] = $6 }
			$4 ~ /×/ { printf "| %s | refresh --once %s, CPU mean | %s | %s | %s |\n", r, trim($2), v, trim(cpu[$2]), trim($4) }
			function trim(s) { gsub(/^ +| +$/, "", s); return s }' "$out/result"
	done
	for v in shipped nowait shipped both; do
		# bench/boot: the median of each case and its ratio.
		"$out/boot-bench" -n 40 -launcher "$out/$v" >"$out/result"
		awk -v r="$r" -v v="$v" -F'|' '
			$3 ~ /codex-launch/ { med[$2] = $5 }
			NF == 6 && $4 ~ /×/ { printf "| %s | boot, %s, median | %s | %s | %s |\n", r, trim($2), v, trim(med[$2]), trim($4) }
			function trim(s) { gsub(/^ +| +$/, "", s); return s }' "$out/result"
	done
	r=$((r + 1))
done
