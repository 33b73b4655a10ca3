#!/usr/bin/env bash
# This machine's own / packed by profiles/modern.toml (its dirs and excludes) and booted to
# login: in QEMU: the biggest real root there is here. One run (it takes a while): the time
# of each stage, the image and ISO sizes, and what `capture` estimated beforehand.
#
#   bash bench/whole-root.sh [--no-boot]
#
# Writes results/whole-root.txt. The work dir is in the bench cache (under /root, which the
# profile does not pack), and is cleaned first so every stage runs.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

work=$CACHE/whole-root
profile=$CACHE/whole-root.toml
out=$RESULTS/whole-root.txt
boot=true
[ "${1:-}" = --no-boot ] && boot=false
mkdir -p "$CACHE" "$RESULTS"
cat > "$profile" <<PROFILE
# bench/whole-root.sh: this machine's / by the modern method, booted to login:.
extends = "$REPO/profiles/modern.toml"

[boottest]
enabled = $boot
accel = "tcg"
memory_mib = 2048
timeout = 3600
PROFILE

[ -d "$work" ] && "$LIVECD" clean "$work" >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$LIVECD" capture "$profile" --work-dir "$work" > "$CACHE/whole-root.capture.txt" 2>&1 || true
read -r wall user sys < <(timed "$CACHE/whole-root.build" "$LIVECD" build "$profile" \
    --work-dir "$work")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
iso=$(find "$work/out" -maxdepth 1 -name '*.iso' | head -n 1)
{
    echo "# bench/whole-root.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs"
    echo "# load average before: $load_before; after: $load_after"
    echo "capture: $(grep -m1 '^  total' "$CACHE/whole-root.capture.txt" || echo '?')"
    echo "build: wall ${wall} s, user ${user} s, sys ${sys} s (boot test: $boot)"
    for stage in preflight kernel system initrd writable bootloader iso boottest; do
        printf '  %-10s %s s\n' "$stage" "$(stage_seconds "$work" "$stage")"
    done
    echo "system.squashfs: $(stat -c %s "$work/stages/system/system.squashfs") bytes"
    echo "ISO: $(stat -c %s "$iso") bytes ($iso)"
    if $boot; then
        echo "boot log's last lines:"
        grep -a -E 'switching to the live system|login:' "$work/logs/boottest.log" \
            | tail -n 3 | sed 's/^/  /'
    fi
} | tee "$out"
