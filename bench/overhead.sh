#!/usr/bin/env bash
# Overhead: the medium profile built by livecd-tui and by its exported script (plain bash,
# the same commands), alternating, RUNS pairs (default 5), each build in a fresh work dir.
# The pair's order alternates too (tool first, then script first) so that a warming cache
# or a busy neighbour does not favour one side. The boot test is off: a QEMU boot under TCG
# varies by seconds, which would hide a difference of a few percent.
#
#   bash bench/overhead.sh            the medium root (bench/make-root.sh makes it)
#   bash bench/overhead.sh --smoke    the demo profile, one pair (a quick check of the bench)
#
# Prints each pair's wall and CPU (user + sys, children included) times and their ratios,
# then the medians; writes results/overhead.txt. On a busy machine the wall ratio of a pair
# can be far off either way; the CPU ratio moves much less.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

work=$CACHE/overhead
mkdir -p "$work" "$RESULTS"
if [ "${1:-}" = --smoke ]; then
    RUNS=1
    demo_profile "$work/profile.toml"
    out=$work/overhead-smoke.txt
    root="the demo's busybox root"
else
    medium_profile "$work/profile.toml"
    out=${OUT:-$RESULTS/overhead.txt}
    root="$(cat "$CACHE/ROOT-KIND"), $(du -sh "$ROOT_DIR" | cut -f 1)"
fi
profile=$work/profile.toml
"$LIVECD" export-script "$profile" --work-dir "$work/script-work" -o "$work/build.sh" > /dev/null

tool() { rm -rf "$work/tool-work"; timed "$work/tool" "$LIVECD" build "$profile" --work-dir "$work/tool-work" -q; }
script() { rm -rf "$work/script-work"; timed "$work/script" bash "$work/build.sh"; }

# One unmeasured build of each: the page cache holds the root for every measured run.
log "bench: warming up"
tool > /dev/null
script > /dev/null

: > "$work/pairs"
for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) -eq 1 ]; then
        t=$(tool); s=$(script)
    else
        s=$(script); t=$(tool)
    fi
    tw=${t%% *}
    sw=${s%% *}
    tc=$(echo "$t" | awk '{ printf "%.2f", $2 + $3 }')
    sc=$(echo "$s" | awk '{ printf "%.2f", $2 + $3 }')
    ratio=$(awk -v a="$tw" -v b="$sw" 'BEGIN { printf "%.3f", a / b }')
    cpu_ratio=$(awk -v a="$tc" -v b="$sc" 'BEGIN { printf "%.3f", a / b }')
    load=$(cut -d ' ' -f 1 /proc/loadavg)
    printf '%s %s %s %s %s %s %s\n' "$tw" "$sw" "$ratio" "$tc" "$sc" "$cpu_ratio" "$load" \
        >> "$work/pairs"
    log "bench: pair $i: tool ${tw}s (cpu ${tc}s), script ${sw}s (cpu ${sc}s), ratio $ratio (cpu $cpu_ratio), load $load"
done

{
    echo "# overhead: livecd-tui build vs the exported script, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(machine)"
    echo "# root: $root; load average at the end: $(cut -d ' ' -f 1-3 /proc/loadavg)"
    echo "# livecd-tui $(git -C "$REPO" describe --always --dirty 2>/dev/null)"
    echo "# per pair: tool_wall_s script_wall_s ratio tool_cpu_s script_cpu_s cpu_ratio load1"
    cat "$work/pairs"
    echo "median tool_wall_s $(cut -d ' ' -f 1 "$work/pairs" | median)"
    echo "median script_wall_s $(cut -d ' ' -f 2 "$work/pairs" | median)"
    echo "median ratio $(cut -d ' ' -f 3 "$work/pairs" | median)"
    echo "median tool_cpu_s $(cut -d ' ' -f 4 "$work/pairs" | median)"
    echo "median script_cpu_s $(cut -d ' ' -f 5 "$work/pairs" | median)"
    echo "median cpu_ratio $(cut -d ' ' -f 6 "$work/pairs" | median)"
} | tee "$out"
