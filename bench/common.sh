# shellcheck shell=bash
# Shared by the bench scripts: where things are, the medium profile, timing and medians.
# Sourced, not run. Every number a script prints comes from /usr/bin/time or the work dir's
# state files; nothing here decides whether a number is good.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
LIVECD=${LIVECD:-$REPO/.venv/bin/livecd-tui}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
# The medium root and everything the benches build live outside the repo.
CACHE=${LIVECD_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livecd-tui-bench}
ROOT_DIR=$CACHE/root
RESULTS=${RESULTS:-$BENCH/results}
RUNS=${RUNS:-5}
# A fixed epoch: the tool and the exported script plan exactly the same commands.
export SOURCE_DATE_EPOCH=1700000000

log() { printf '%s\n' "$*" >&2; }

# median: the median of the numbers on stdin, one per line.
median() {
    sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) exit 1
              if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# timed NAME COMMAND...: run COMMAND, its output to NAME.log; print "wall user sys" (seconds,
# children included) as /usr/bin/time measured them. Fails with the log's end if it fails.
timed() {
    local name=$1
    shift
    if ! /usr/bin/time -f '%e %U %S' -o "$name.time" "$@" > "$name.log" 2>&1; then
        log "bench: failed: $* (log: $name.log)"
        tail -n 20 "$name.log" >&2
        return 1
    fi
    tail -n 1 "$name.time"
}

# stage_seconds WORK STAGE: how long a stage ran, from the work dir's state file.
stage_seconds() {
    "$PYTHON" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print("%.3f" % (s["ended"] - s["started"]) if s.get("status") == "done" else "-")' \
        "$1/state/$2.json"
}

# ran_stages LOG: the stages a `livecd-tui build` run ran (not skipped), comma separated.
ran_stages() {
    sed -n 's/^==> \([a-z]*\): [0-9]* step.*/\1/p' "$1" | paste -s -d, -
}

newest_kernel() { find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1; }

# medium_profile FILE: the medium profile: the cached debootstrap root packed by the modern
# method with the host's kernel (the root has none), no boot test unless a variant asks.
medium_profile() {
    local kernel release
    kernel=$(newest_kernel)
    release=${kernel#/boot/vmlinuz-}
    [ -d "$ROOT_DIR/usr" ] || { log "bench: no medium root in $ROOT_DIR: run bench/make-root.sh"; return 1; }
    cat > "$1" <<PROFILE
# The benches' medium profile: a debootstrap minbase root (bench/make-root.sh).
extends = "$REPO/profiles/modern.toml"

[system]
root = "$ROOT_DIR"
modules = "none"

[kernel]
image = "$kernel"
modules_dir = "/lib/modules/$release"

[boottest]
enabled = false
accel = "tcg"
timeout = 900

[build]
source_date_epoch = $SOURCE_DATE_EPOCH
PROFILE
}

# demo_profile FILE: the demo profile with the same fixed epoch and no boot test (--smoke).
demo_profile() {
    cat > "$1" <<PROFILE
extends = "$REPO/profiles/demo.toml"

[boottest]
enabled = false

[build]
source_date_epoch = $SOURCE_DATE_EPOCH
PROFILE
}

# machine: one line describing where the numbers come from.
machine() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    printf '%s; %s CPUs; %s MiB RAM; %s; %s\n' "$cpu" "$(nproc)" \
        "$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" \
        "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(uname -r)"
}
