#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds corral's Debian package (debian/) from a temporary copy of the tree, so the checkout gets no
# build files, and puts the .deb into OUT_DIR. With --version, the copy gets a changelog entry of that
# version first (the e2e tier builds a "newer" package of the same code that way).
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/deb.sh [--version VERSION] [--lintian] [OUT_DIR]

Runs `dpkg-buildpackage -us -uc -b` (debhelper: scripts/setup.sh --deb installs it) on a copy of
the tree and copies corral_VERSION_ARCH.deb into OUT_DIR (default: build-deb).

Options:
  --version VERSION  package (and corral --version) version, e.g. 0.1.0+local1 (default: the
                     version of debian/changelog)
  --lintian          also check the package with lintian; its errors and warnings fail the build
  -h, --help         show this help
EOF_USAGE
}

version='' lintian=0 out=build-deb
while (($# > 0)); do
    case $1 in
        --version)
            version=${2:?--version needs a version}
            shift 2
            ;;
        --lintian)
            lintian=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "deb.sh: error: unknown option '$1'" >&2
            usage >&2
            exit 64
            ;;
        *)
            out=$1
            shift
            ;;
    esac
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
for tool in dpkg-buildpackage dh; do
    command -v "$tool" >/dev/null || { echo "deb.sh: error: $tool is missing (scripts/setup.sh --deb)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/corral-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corral"
# The tree as git sees it (tracked and new files, not what .gitignore names: no build directories).
if git -C "$repo_root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo_root" && git ls-files -z -c -o --exclude-standard | while IFS= read -r -d '' f; do
        [[ -e $f ]] && printf '%s\0' "$f"
    done | tar -c --null -T - -f -) | tar -x -C "$work/corral"
else
    # No git (or not one this user may read): everything but the build directories.
    tar -c -C "$repo_root" --exclude=./.git --exclude='./build*' --exclude='./obj-*' -f - . | tar -x -C "$work/corral"
fi

if [[ -n $version ]]; then
    # A changelog entry on top, as dch would write it.
    changelog=$work/corral/debian/changelog
    {
        printf 'corral (%s) unstable; urgency=medium\n\n  * Rebuild as %s.\n\n' "$version" "$version"
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$changelog" -S Maintainer)" "$(date -R)"
        cat "$changelog"
    } >"$changelog.new"
    mv "$changelog.new" "$changelog"
fi

t0=$SECONDS
(cd "$work/corral" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
    echo "deb.sh: dpkg-buildpackage failed; its output:" >&2
    sed 's/^/    /' "$work/build.log" >&2
    exit 1
}
changes=$(echo "$work"/corral_*.changes)
deb=$(echo "$work"/corral_*.deb)
[[ -f $deb && -f $changes ]] || { echo "deb.sh: error: no .deb was built" >&2; exit 1; }
echo "deb.sh: built ${deb##*/} ($(stat -c %s "$deb") bytes) in $((SECONDS - t0)) s"
# What lintian does not check: everything where the tools and users look for it, the example unit not
# among the system's units, the one conffile, no maintainer script that stops or restarts a pool.
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\.||')
missing=()
for path in /usr/bin/corral /lib/systemd/system/corral@.service /lib/systemd/system/corral@.socket \
    /usr/lib/systemd/catalog/corral.catalog /usr/share/man/man8/corral.8.gz /usr/share/man/man5/corral.conf.5.gz \
    /usr/share/bash-completion/completions/corral /etc/corral/app.conf.example \
    /usr/share/doc/corral/examples/corral-example.service /usr/share/doc/corral/examples/uvicorn/serve.py; do
    grep -qxF "$path" <<<"$contents" || missing+=("$path")
done
((${#missing[@]} == 0)) || { echo "deb.sh: error: missing from ${deb##*/}: ${missing[*]}" >&2; exit 1; }
if grep -E 'corral-example\.(service|socket)$' <<<"$contents" | grep -qv '^/usr/share/doc/'; then
    echo "deb.sh: error: the example unit is among the system's units" >&2
    exit 1
fi
control=$work/control
dpkg-deb -e "$deb" "$control"
[[ $(cat "$control/conffiles") == /etc/corral/app.conf.example ]] ||
    { echo "deb.sh: error: conffiles is not just /etc/corral/app.conf.example: $(cat "$control/conffiles")" >&2; exit 1; }
if grep -HnE '^\s*(deb-systemd-invoke|systemctl)\b.*\b(restart|start|enable)\b' "$control"/p* 2>/dev/null; then
    echo "deb.sh: error: a maintainer script starts, enables or restarts units (above)" >&2
    exit 1
fi
if ((lintian)); then
    t0=$SECONDS
    # --fail-on error,warning: a new warning fails the build too; debian/corral.lintian-overrides says
    # which ones are deliberate.
    if ! lintian --fail-on error,warning "$changes"; then
        echo "deb.sh: lintian found problems in ${deb##*/}" >&2
        exit 1
    fi
    echo "deb.sh: lintian: clean ($((SECONDS - t0)) s)"
fi
cp "$deb" "$out/"
echo "deb.sh: $out/${deb##*/}"
