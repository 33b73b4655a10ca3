#!/usr/bin/env bash
# Choosing a compressor: the medium profile's squashfs made with gzip, xz, zstd and lz4.
# For each, RUNS full builds (default 3) in a fresh work dir, the boot test on (QEMU with
# TCG, the same on every host, as a slow machine would boot): the system stage's time, the
# image's size, and the boot test's time from starting QEMU to the login prompt. The
# compressors take turns, each run starting with the next one.
#
#   bash bench/compressors.sh [--smoke]      (--smoke: the demo profile, one run, no boot)
#
# Writes results/compressors.txt (a Markdown table for docs/benchmarks.md).
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

RUNS=${RUNS_COMPRESSORS:-3}
COMPRESSORS=(gzip xz zstd lz4)
work=$CACHE/compressors
mkdir -p "$work" "$RESULTS"
boot=true
if [ "${1:-}" = --smoke ]; then
    RUNS=1
    boot=false
    demo_profile "$work/base.toml"
    out=$work/compressors-smoke.txt
else
    medium_profile "$work/base.toml"
    out=$RESULTS/compressors.txt
fi
for c in "${COMPRESSORS[@]}"; do
    cat > "$work/$c.toml" <<PROFILE
extends = "base.toml"

[system]
compressor = "$c"

[boottest]
enabled = $boot
PROFILE
    : > "$work/$c.runs"
done

for i in $(seq 1 "$RUNS"); do
    for j in "${!COMPRESSORS[@]}"; do
        c=${COMPRESSORS[$(((i - 1 + j) % ${#COMPRESSORS[@]}))]}
        rm -rf "$work/w-$c"
        timed "$work/$c" "$LIVECD" build "$work/$c.toml" --work-dir "$work/w-$c" > /dev/null
        size=$(stat -c %s "$work/w-$c/stages/system/system.squashfs")
        build=$(stage_seconds "$work/w-$c" system)
        booted=$(if $boot; then stage_seconds "$work/w-$c" boottest; else echo -; fi)
        printf '%s %s %s\n' "$build" "$size" "$booted" >> "$work/$c.runs"
        log "bench: run $i $c: system stage ${build}s, image $((size / 1024 / 1024)) MiB, boot to login ${booted}s"
    done
done

raw=0
$boot && raw=$(du -s -B1 --apparent-size "$ROOT_DIR" | cut -f 1)
{
    echo "<!-- compressors, $(date -u +%Y-%m-%dT%H:%MZ); machine: $(machine); root: $(cat "$CACHE/ROOT-KIND" 2>/dev/null || echo demo), $((raw / 1024 / 1024)) MiB; medians of $RUNS runs -->"
    echo
    echo "| compressor | system stage (s) | image (MiB) | of the root | boot to login: (s) |"
    echo "|---|---:|---:|---:|---:|"
    for c in "${COMPRESSORS[@]}"; do
        build=$(cut -d ' ' -f 1 "$work/$c.runs" | median)
        size=$(cut -d ' ' -f 2 "$work/$c.runs" | median)
        booted=$(if $boot; then cut -d ' ' -f 3 "$work/$c.runs" | median; else echo -; fi)
        printf '| %s | %.1f | %.1f | %s | %s |\n' "$c" "$build" \
            "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" \
            "$(awk -v s="$size" -v r="$raw" 'BEGIN { if (r > 0) printf "%.0f%%", 100 * s / r; else print "-" }')" \
            "$(if [ "$booted" = - ]; then echo -; else printf '%.1f' "$booted"; fi)"
    done
} | tee "$out"
