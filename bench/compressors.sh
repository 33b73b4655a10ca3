#!/usr/bin/env bash
# Choosing a compressor: the medium profile's squashfs made with gzip, xz, zstd and lz4.
# For each, RUNS full builds (default 3) in a fresh work dir, the boot test on (QEMU with
# TCG, the same on every host, as a slow machine would boot): the system stage's time, the
# image's size, and the boot test's time from starting QEMU to the login prompt. The
# compressors take turns, each run starting with the next one.
#
#   bash bench/compressors.sh [--smoke]      (--smoke: the demo profile, one run, no boot)
#   bash bench/compressors.sh --table        only print the table of the last runs again
#
# Writes results/compressors.txt (a Markdown table for docs/benchmarks.md).
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

RUNS=${RUNS_COMPRESSORS:-3}
COMPRESSORS=(gzip xz zstd lz4)
work=$CACHE/compressors
mkdir -p "$work" "$RESULTS"
boot=true
table_only=false
if [ "${1:-}" = --table ]; then
    table_only=true
    RUNS=$(wc -l < "$work/zstd.runs")
    medium_profile "$work/base.toml"
    out=$RESULTS/compressors.txt
elif [ "${1:-}" = --smoke ]; then
    RUNS=1
    boot=false
    demo_profile "$work/base.toml"
    out=$work/compressors-smoke.txt
else
    medium_profile "$work/base.toml"
    out=$RESULTS/compressors.txt
fi
for c in "${COMPRESSORS[@]}"; do
    $table_only && break
    cat > "$work/$c.toml" <<PROFILE
extends = "base.toml"

[system]
compressor = "$c"

[boottest]
enabled = $boot
PROFILE
    : > "$work/$c.runs"
done

$table_only && RUNS_TO_DO=0 || RUNS_TO_DO=$RUNS
for i in $(seq 1 "$RUNS_TO_DO"); do
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

# What mksquashfs packed, before compression (the same for every compressor).
packed=$(sed -n 's/.*of uncompressed filesystem size (\([0-9.]*\) Kbytes).*/\1/p' \
    "$work/w-zstd/logs/system.log" | head -n 1)
# range COLUMN FILE: "median (min-max)" of a column of a .runs file.
range() {
    local m lo hi
    m=$(cut -d ' ' -f "$1" "$2" | median)
    lo=$(cut -d ' ' -f "$1" "$2" | sort -g | head -n 1)
    hi=$(cut -d ' ' -f "$1" "$2" | sort -g | tail -n 1)
    if [ "$m" = - ]; then echo -; else printf '%.1f (%.1f-%.1f)' "$m" "$lo" "$hi"; fi
}
{
    echo "<!-- compressors, $(date -u +%Y-%m-%dT%H:%MZ); machine: $(machine); root: $(cat "$CACHE/ROOT-KIND" 2>/dev/null || echo demo), $(awk -v k="$packed" 'BEGIN { printf "%.0f", k / 1024 }') MiB packed; medians (min-max) of $RUNS runs -->"
    echo
    echo "| compressor | system stage (s) | image (MiB) | of what is packed | boot to login: (s) |"
    echo "|---|---:|---:|---:|---:|"
    for c in "${COMPRESSORS[@]}"; do
        size=$(cut -d ' ' -f 2 "$work/$c.runs" | median)
        printf '| %s | %s | %.1f | %s | %s |\n' "$c" "$(range 1 "$work/$c.runs")" \
            "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" \
            "$(awk -v s="$size" -v k="$packed" 'BEGIN { printf "%.0f%%", 100 * s / 1024 / k }')" \
            "$(if $boot; then range 3 "$work/$c.runs"; else echo -; fi)"
    done
} | tee "$out"
