#!/bin/sh
# Makes local stand-ins for the Dockerfile's base images, for tests on a
# machine that reaches no image registry: a debootstrap of Debian bookworm
# from the mirror apt already uses, then
#   GO_IMAGE:   + the Go toolchain the tests run with (go env GOROOT)
#   NODE_IMAGE: + the host's node and npm, and a user "node" (uid 1000) as the
#               official node image has (the Dockerfile removes it)
# Both also trust the host's extra CA certificates (the directory
# update-ca-certificates reads), so builds behind a TLS-intercepting proxy can
# fetch modules and packages (npm through its global npmrc, as node reads no
# system CA store); the shipped Dockerfile knows nothing of this.
#
# Usage: base-images.sh GO_IMAGE NODE_IMAGE LABEL   (as root; LABEL=value is
# set on both images so the caller can tell its stand-ins from real ones)
set -eu
go_image=$1 node_image=$2 label=$3

# The first bookworm mirror of apt's sources (one-line or deb822 form).
mirror=$(
	{
		grep -hE '^deb +(\[[^]]*\] +)?[a-z]+://' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '$2 ~ /^bookworm$/ {print $1}'
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] || continue
			awk '/^URIs:/ {u=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i=="bookworm") print u} /^$/ {u=""}' "$f"
		done
	} | grep -v security | head -n 1
)
[ -n "$mirror" ] || { echo "base-images: no bookworm mirror in apt's sources" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
echo "base-images: debootstrap bookworm from $mirror" >&2
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$root" update-ca-certificates >/dev/null
printf 'deb %s bookworm main\n' "$mirror" >"$root/etc/apt/sources.list"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/archives/"*.deb
base="localhost/codex-launch-test/bookworm:$$"
tar -C "$root" -c . | podman import --quiet - "$base" >/dev/null

path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

c=$(buildah from --pull=never "$base")
buildah copy --quiet "$c" "$(go env GOROOT)" /usr/local/go >/dev/null
buildah config --env PATH=/go/bin:/usr/local/go/bin:$path --env GOPATH=/go --workingdir /go \
	--label "$label" "$c"
buildah commit --quiet --rm "$c" "$go_image" >/dev/null

node=$(readlink -f "$(command -v node)")
npm_dir="$(npm root -g)/npm"
[ -f "$npm_dir/bin/npm-cli.js" ] || { echo "base-images: no npm package at $npm_dir" >&2; exit 2; }
c=$(buildah from --pull=never "$base")
mnt=$(buildah mount "$c")
install -m 0755 "$node" "$mnt/usr/local/bin/node"
mkdir -p "$mnt/usr/local/lib/node_modules"
cp -a "$npm_dir" "$mnt/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
# node reads no system CA store: npm is told where the bundle (with the extra
# certificates) is, in its global config.
mkdir -p "$mnt/usr/local/etc"
echo cafile=/etc/ssl/certs/ca-certificates.crt >"$mnt/usr/local/etc/npmrc"
chroot "$mnt" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
chroot "$mnt" node --version >/dev/null
buildah umount "$c" >/dev/null
buildah config --env PATH=$path --label "$label" --cmd node "$c"
buildah commit --quiet --rm "$c" "$node_image" >/dev/null
podman rmi "$base" >/dev/null
