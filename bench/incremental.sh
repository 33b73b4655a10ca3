#!/usr/bin/env bash
# Incremental builds of the medium profile (boot test off), after a full build:
#   (a) nothing changed;
#   (b) the boot menu title changed (only bootloader and iso should run);
#   (c) one file of the /etc overrides changed (only the stages that use it should run).
# Each case RUNS times (default 5); (b) and (c) flip between two values, so every run has
# something to do. The full build is timed RUNS times too (fresh work dir each), for the
# ratio in the same run.
#
#   bash bench/incremental.sh [--smoke]      (--smoke: the demo profile, one run each)
#
# Prints each run, then per case the median wall time, the stages that ran and the ratio to
# the full build; writes results/incremental.txt.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

work=$CACHE/incremental
rm -rf "$work/overrides"
mkdir -p "$work/overrides" "$RESULTS"
if [ "${1:-}" = --smoke ]; then
    RUNS=1
    demo_profile "$work/base.toml"
    out=$work/incremental-smoke.txt
else
    medium_profile "$work/base.toml"
    out=$RESULTS/incremental.txt
fi
echo "Welcome to the bench's live system." > "$work/overrides/motd"
for title in one two; do
    cat > "$work/title-$title.toml" <<PROFILE
extends = "base.toml"

[bootloader]
title = "Live system $title"

[writable]
overrides = "$work/overrides"
PROFILE
done

build() {  # build NAME PROFILE: one `livecd-tui build`, prints "wall stages-that-ran"
    local t
    t=$(timed "$work/$1" "$LIVECD" build "$2" --work-dir "$work/w")
    printf '%s %s\n' "${t%% *}" "$(ran_stages "$work/$1.log")"
}

: > "$work/full"
for i in $(seq 1 "$RUNS"); do
    rm -rf "$work/w"
    r=$(build full "$work/title-one.toml")
    log "bench: full build $i: $r"
    echo "$r" >> "$work/full"
done

: > "$work/nothing"
for i in $(seq 1 "$RUNS"); do
    r=$(build nothing "$work/title-one.toml")
    log "bench: nothing changed $i: $r"
    echo "$r" >> "$work/nothing"
done

: > "$work/title"
for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) -eq 1 ]; then next=two; else next=one; fi
    r=$(build title "$work/title-$next.toml")
    log "bench: title changed $i: $r"
    echo "$r" >> "$work/title"
done

: > "$work/override"
for i in $(seq 1 "$RUNS"); do
    echo "Welcome to the bench's live system, run $i." > "$work/overrides/motd"
    r=$(build override "$work/title-$next.toml")
    log "bench: /etc override changed $i: $r"
    echo "$r" >> "$work/override"
done

full=$(cut -d ' ' -f 1 "$work/full" | median)
{
    echo "# incremental builds, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(machine)"
    echo "# root: $(cat "$CACHE/ROOT-KIND" 2>/dev/null || echo demo)"
    echo "# case: median_wall_s ratio_to_full stages_that_ran (each run's: wall stages)"
    for case in full nothing title override; do
        m=$(cut -d ' ' -f 1 "$work/$case" | median)
        ran=$(cut -d ' ' -f 2 "$work/$case" | sort | uniq -c | awk '{ printf "%s%s x%s", sep, ($2 == "" ? "(none)" : $2), $1; sep = "; " }')
        printf '%s: %s s, %s of the full build, ran: %s\n' "$case" "$m" \
            "$(awk -v a="$m" -v b="$full" 'BEGIN { printf "%.1f%%", 100 * a / b }')" "$ran"
    done
    for case in full nothing title override; do
        echo "# $case, each run: $(cut -d ' ' -f 1 "$work/$case" | paste -s -d ' ' -)"
    done
} | tee "$out"
