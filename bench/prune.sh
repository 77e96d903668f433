#!/usr/bin/env bash
# Prune benchmark (docs/performance.md, "Prune"): the same history of SNAPSHOTS backups of the
# Linux source tree, with changes between them, in a bms, a restic and a borg repository; then
# half the snapshots are forgotten (keep-last SNAPSHOTS/2) and the space reclaimed is timed:
# `bmsctl repo prune` (its two phases: condemn, then, once the grace period is over, delete; the
# grace is simulated by moving the condemned list's times back a day), `restic prune` and
# `borg compact`. Wall time and peak RSS from /usr/bin/time -v, repository bytes before and after.
#
#   bench/prune.sh                   as root; BMSCTL defaults to target/release/bmsctl
#   SNAPSHOTS=12 UNIQUE_MIB=32 BENCH_DIR=/var/tmp/bms-bench bench/prune.sh
#   PRUNE_HISTORY=save bench/prune.sh   also keep a copy of the three repositories after the
#                                        forget, in $BENCH_DIR/prune-history
#   PRUNE_HISTORY=reuse bench/prune.sh  time the prune steps again on a fresh copy of that saved
#                                        history, without making it again (repeated rounds)
# The corpus is $BENCH_DIR/corpus/linux (made by bench/run.sh --prepare) when it exists, else
# /usr/src/linux-source-6.1.tar.xz (Debian package linux-source-6.1) unpacked under $BENCH_DIR.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
BMSCTL=${BMSCTL:-$top/target/release/bmsctl}
SNAPSHOTS=${SNAPSHOTS:-12}
UNIQUE_MIB=${UNIQUE_MIB:-32}
BENCH_DIR=${BENCH_DIR:-/var/tmp/bms-bench}
BORG_COMPRESSION=${BENCH_BORG_COMPRESSION:-zstd,3}
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -x "$BMSCTL" ] || die "missing $BMSCTL: cargo build --release -p bmsctl (or set BMSCTL)"
for cmd in restic borg python3 /usr/bin/time; do
    command -v "$cmd" >/dev/null || die "missing $cmd (apt-get install -y restic borgbackup time python3)"
done
[ "$SNAPSHOTS" -ge 10 ] || die "SNAPSHOTS must be at least 10"

corpus=$BENCH_DIR/corpus/linux
if [ ! -d "$corpus" ]; then
    corpus=$BENCH_DIR/prune-corpus/linux
    if [ ! -d "$corpus" ]; then
        tarball=/usr/src/linux-source-6.1.tar.xz
        [ -f "$tarball" ] || die "no corpus: run bench/run.sh --prepare, or apt-get install -y linux-source-6.1"
        log "unpacking $tarball"
        mkdir -p "$corpus.tmp"
        tar -xJf "$tarball" -C "$corpus.tmp" --strip-components=1
        mv "$corpus.tmp" "$corpus"
    fi
fi

run=$BENCH_DIR/prune-run
history=$BENCH_DIR/prune-history
PRUNE_HISTORY=${PRUNE_HISTORY:-}
case "$PRUNE_HISTORY" in
    "" | save | reuse) ;;
    *) die "PRUNE_HISTORY must be save or reuse, not '$PRUNE_HISTORY'" ;;
esac
rm -rf "$run"
mkdir -p "$run"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$run/cache/restic BORG_BASE_DIR=$run/cache/borg
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
keep=$((SNAPSHOTS / 2))
if [ "$PRUNE_HISTORY" = reuse ]; then
    [ -f "$history/done" ] || die "no saved history in $history: run PRUNE_HISTORY=save $0 first"
    SNAPSHOTS=$(cat "$history/done")
    keep=$((SNAPSHOTS / 2))
    log "copying the saved history of $SNAPSHOTS snapshots"
    for t in bms restic borg; do cp -a "$history/$t" "$run/$t"; done
else
src=$run/src
cp -a "$corpus" "$src"
"$BMSCTL" repo init "$run/bms" >/dev/null
restic -q -r "$run/restic" init --repository-version 2 >/dev/null
borg init --encryption none "$run/borg"
mapfile -t files < <(find "$src" -type f -size +0 | sort)

# Before snapshot i: every 40th file (a different slice each time) gets a line appended, and the
# previous snapshot's file of UNIQUE_MIB random MiB is replaced by a new one, so each snapshot
# holds data of its own that forgetting it frees.
change() {
    local i=$1 k
    for ((k = i % 40; k < ${#files[@]}; k += 40)); do
        printf 'change %d\n' "$i" >> "${files[$k]}"
    done
    rm -f "$src"/bench-unique-*.bin
    head -c "${UNIQUE_MIB}M" /dev/urandom > "$src/bench-unique-$i.bin"
}
for ((i = 1; i <= SNAPSHOTS; i++)); do
    [ "$i" -gt 1 ] && change "$i"
    log "snapshot $i of $SNAPSHOTS"
    "$BMSCTL" repo backup "$run/bms" "$src" >/dev/null
    restic -q -r "$run/restic" --compression auto backup "$src" >/dev/null
    borg create --compression "$BORG_COMPRESSION" "$run/borg::s$i" "$src"
done

log "forgetting all but the last $keep snapshots"
"$BMSCTL" repo forget "$run/bms" --keep-last "$keep" >/dev/null
restic -q -r "$run/restic" forget --keep-last "$keep" >/dev/null
borg prune --keep-last "$keep" "$run/borg"
rm -rf "$src"
if [ "$PRUNE_HISTORY" = save ]; then
    log "saving the history in $history"
    rm -rf "$history"
    mkdir -p "$history"
    for t in bms restic borg; do cp -a "$run/$t" "$history/$t"; done
    echo "$SNAPSHOTS" > "$history/done"
fi
fi

size() { du -sb "$1" | cut -f1; }
results=$run/results.tsv
: > "$results"
# measure TOOL STEP CMD...: wall seconds and peak RSS (KiB) of one command.
measure() {
    local tool=$1 step=$2
    shift 2
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -v -o "$run/time.txt" "$@" >"$run/$tool-$step.log" 2>&1 \
        || die "$tool $step failed: $(tail -n 5 "$run/$tool-$step.log")"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (j = 1; j <= n; j++) s = s * 60 + p[j]; print s}' "$run/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$run/time.txt")
    printf '%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "$rss" >> "$results"
}
age_condemned() {
    python3 - "$1/condemned" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["packs"] = {k: v - 86400 for k, v in d["packs"].items()}
json.dump(d, open(p, "w"))
EOF
}

declare -A before after
for t in bms restic borg; do before[$t]=$(size "$run/$t"); done
log "bms prune"
measure bms condemn "$BMSCTL" --json repo prune "$run/bms"
age_condemned "$run/bms"
measure bms delete "$BMSCTL" --json repo prune "$run/bms"
log "restic prune"
measure restic prune restic -r "$run/restic" prune
log "borg compact"
measure borg compact borg compact "$run/borg"
for t in bms restic borg; do after[$t]=$(size "$run/$t"); done
"$BMSCTL" repo verify "$run/bms" --read-data >/dev/null || die "the pruned bms repository does not verify"

echo "| tool | step | wall s | peak RSS MiB | repository before → after |"
echo "| --- | --- | --- | --- | --- |"
while IFS=$'\t' read -r tool step wall rss; do
    printf '| %s | %s | %.2f | %.0f | %s → %s MB |\n' "$tool" "$step" "$wall" "$((rss / 1024))" \
        "$((before[$tool] / 1000000))" "$((after[$tool] / 1000000))"
done < "$results"
awk -F'\t' '{w[$1] += $3} END {
    printf "\nbms total %.2f s; restic prune / bms %.2fx; borg compact / bms %.2fx\n", w["bms"], w["restic"] / w["bms"], w["borg"] / w["bms"] }' "$results"
echo "versions: $("$BMSCTL" --version), $(restic version | awk '{print "restic " $2}'), $(borg --version); $SNAPSHOTS snapshots, keep-last $keep"
