#!/usr/bin/env bash
# CPU use of the system (squashfs) stage of the medium profile: (user + sys) / wall, RUNS
# times (default 5), measured two ways:
#   stage  `livecd-tui build --only system --force system`, the whole process (its scrub
#          steps, mksquashfs, the image check), CPU of all its children included;
#   mksquashfs  the stage's mksquashfs command alone, exactly as the stage ran it (from its log).
# On N CPUs the best possible is N.
#
#   bash bench/squashfs-cpu.sh [--smoke]      (--smoke: the demo profile, one run)
#
# Writes results/squashfs-cpu.txt.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

work=$CACHE/squashfs-cpu
mkdir -p "$work" "$RESULTS"
if [ "${1:-}" = --smoke ]; then
    RUNS=1
    demo_profile "$work/profile.toml"
    out=$work/squashfs-cpu-smoke.txt
else
    medium_profile "$work/profile.toml"
    out=$RESULTS/squashfs-cpu.txt
fi
profile=$work/profile.toml
rm -rf "$work/w"
timed "$work/first" "$LIVECD" build "$profile" --work-dir "$work/w" --only preflight,kernel,system > /dev/null

ratio() { awk '{ printf "%.2f", ($2 + $3) / $1 }'; }

: > "$work/runs"
for i in $(seq 1 "$RUNS"); do
    stage=$(timed "$work/stage" "$LIVECD" build "$profile" --work-dir "$work/w" --only system --force system)
    # The mksquashfs line the stage logged (after "$ "), run again the same way, in a copy
    # of the stage's partial dir (its exclude and pseudo files; the demo's root).
    line=$(sed -n 's/^\$ \(.*mksquashfs .*\)$/\1/p' "$work/w/logs/system.log" | tail -n 1)
    rm -rf "$work/w/stages/system.partial"
    cp -a "$work/w/stages/system" "$work/w/stages/system.partial"
    rm -f "$work/w/stages/system.partial/system.squashfs"
    squash=$(timed "$work/mksquashfs" bash -c "$line")
    rm -rf "$work/w/stages/system.partial"
    printf '%s %s %s %s\n' "$(echo "$stage" | awk '{ print $1 }')" "$(echo "$stage" | ratio)" \
        "$(echo "$squash" | awk '{ print $1 }')" "$(echo "$squash" | ratio)" >> "$work/runs"
    log "bench: run $i: stage wall ${stage%% *}s, (user+sys)/wall $(echo "$stage" | ratio); mksquashfs wall ${squash%% *}s, $(echo "$squash" | ratio)"
done

{
    echo "# squashfs stage CPU use, $(date -u +%Y-%m-%dT%H:%MZ), load average before: $(cut -d ' ' -f 1-3 /proc/loadavg)"
    echo "# machine: $(machine)"
    echo "# root: $(cat "$CACHE/ROOT-KIND" 2>/dev/null || echo demo)"
    echo "# per run: stage_wall_s stage_cpu_per_wall mksquashfs_wall_s mksquashfs_cpu_per_wall"
    cat "$work/runs"
    echo "median stage_wall_s $(cut -d ' ' -f 1 "$work/runs" | median)"
    echo "median stage_cpu_per_wall $(cut -d ' ' -f 2 "$work/runs" | median)"
    echo "median mksquashfs_wall_s $(cut -d ' ' -f 3 "$work/runs" | median)"
    echo "median mksquashfs_cpu_per_wall $(cut -d ' ' -f 4 "$work/runs" | median)"
} | tee "$out"
