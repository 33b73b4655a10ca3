#!/usr/bin/env bash
# Make (once) the benches' medium system root, a few hundred MB: Debian 12 minbase, with
# systemd as its init and udev (minbase has neither, and without udev systemd waits in vain
# for the serial console's device), so that it boots to a login prompt; and busybox-static
# (the initrd takes its busybox from the system root). Cached in $CACHE/root
# (default ~/.cache/livecd-tui-bench/root).
#
#   bash bench/make-root.sh            make it if it is not there
#   bash bench/make-root.sh --again    make it again
#
# debootstrap fetches from the mirror apt uses (read from /etc/apt). When no mirror answers,
# the root is made from a copy of this host's /usr and /etc instead, and ROOT-KIND says so:
# the numbers are then for a different (bigger) root, and docs/benchmarks.md must say so.
# Needs root (debootstrap, and reading every file of the root).
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

again=false
[ "${1:-}" = --again ] && again=true

if [ -x "$ROOT_DIR/usr/bin/bash" ] && ! $again; then
    log "bench: medium root already in $ROOT_DIR ($(cat "$CACHE/ROOT-KIND" 2>/dev/null))"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "bench: make-root.sh needs root"; exit 2; }

# The first bookworm mirror of apt's sources (deb822 .sources files, then sources.list).
apt_mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             /Suites:[^\n]*bookworm( |\n|$)/ && !/-security/ {
                 for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, " "); print u[2]; exit } }' \
            "$file"
    done
    awk '$1 == "deb" && $3 == "bookworm" { print $2 }' /etc/apt/sources.list 2>/dev/null || true
}

mkdir -p "$CACHE"
rm -rf "$ROOT_DIR.tmp"
mirror=$(apt_mirror | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
log "bench: debootstrap --variant=minbase --include=systemd-sysv,udev,busybox-static bookworm from $mirror"
command -v debootstrap > /dev/null || apt-get install -y -q debootstrap
if debootstrap --variant=minbase --include=systemd-sysv,udev,busybox-static bookworm "$ROOT_DIR.tmp" "$mirror" \
        > "$CACHE/debootstrap.log" 2>&1; then
    kind="debootstrap --variant=minbase --include=systemd-sysv,udev,busybox-static bookworm ($mirror)"
else
    log "bench: debootstrap failed (see $CACHE/debootstrap.log): falling back to a copy of" \
        "this host's /usr and /etc"
    rm -rf "$ROOT_DIR.tmp"
    mkdir -p "$ROOT_DIR.tmp"
    cp -a /usr /etc "$ROOT_DIR.tmp"/
    for link in bin sbin lib lib64; do
        [ -L "/$link" ] && ln -s "usr/$link" "$ROOT_DIR.tmp/$link"
    done
    mkdir -p "$ROOT_DIR.tmp"/{dev,proc,sys,run,tmp,var,root,home}
    kind="FALLBACK: a copy of the host's /usr and /etc (debootstrap could not reach a mirror)"
fi
rm -rf "$ROOT_DIR"
mv "$ROOT_DIR.tmp" "$ROOT_DIR"
printf '%s\n' "$kind" > "$CACHE/ROOT-KIND"
log "bench: medium root: $kind, $(du -sh "$ROOT_DIR" | cut -f 1) in $ROOT_DIR"
