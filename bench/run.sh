#!/usr/bin/env bash
# bms repository benchmark: `bmsctl repo` against restic, borg and tar | zstd -1 -T0.
#
# One run measures, for every tool, on the same corpus:
#   backup1  first backup into a new repository
#   backup2  second backup with nothing changed
#   backup3  backup after rewriting 1% of the files
#   restore  restore of the latest snapshot into a fresh directory (reference: cp -a)
#   verify   full verification that reads all data
# with wall time, user+sys CPU time, peak RSS (GNU time) and the repository size (du -sb).
#
# Usage: bench/run.sh [--small] [--tools "bms restic borg tar"] [--repeat N] [--out FILE] [--prepare] [--purge]
#   --repeat N runs every phase N times (fresh repositories each round) and reports medians;
#   --prepare builds (or reuses) the corpus and stops; --purge removes BENCH_DIR entirely.
# See bench/README.md for the environment variables and what gets installed.
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

BENCH_DIR=${BENCH_DIR:-/var/tmp/bms-bench}
BMSCTL=${BMSCTL:-$SRC_ROOT/target/release/bmsctl}
CORPUS_KIND=${BENCH_CORPUS:-full}
TOOLS=${BENCH_TOOLS:-"bms restic borg tar"}
DEBS=${BENCH_DEBS:-}
RANDOM_MIB=${BENCH_RANDOM_MIB:-}
BORG_COMPRESSION=${BENCH_BORG_COMPRESSION:-zstd,3}
CHECK_RESTORE=${BENCH_CHECK_RESTORE:-1}
REPEAT=${BENCH_REPEAT:-1}
ROUND=1
OUT=${BENCH_OUT:-}
PURGE=0
PREPARE_ONLY=0

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --small) CORPUS_KIND=small ;;
        --full) CORPUS_KIND=full ;;
        --tools) TOOLS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --repeat) REPEAT=$2; shift ;;
        --purge) PURGE=1 ;;
        --prepare) PREPARE_ONLY=1 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
    shift
done

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "$PURGE" = 1 ]; then
    case "$BENCH_DIR" in /|/var|/var/tmp|/tmp|/home|/root|"") die "refusing to purge BENCH_DIR=$BENCH_DIR" ;; esac
    log "removing $BENCH_DIR (corpus, caches, results)"
    rm -rf --one-file-system "$BENCH_DIR"
    exit 0
fi

case "$REPEAT" in ''|*[!0-9]*|0) die "--repeat needs a positive number" ;; esac
case "$CORPUS_KIND" in
    full) DEBS=${DEBS:-"chromium firefox-esr golang-1.19-go"}; RANDOM_MIB=${RANDOM_MIB:-512} ;;
    small) DEBS=${DEBS:-"libllvm15"}; RANDOM_MIB=${RANDOM_MIB:-64} ;;
    *) die "BENCH_CORPUS must be full or small" ;;
esac

# ---------------------------------------------------------------- tools
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package: $2)"); }
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (Debian package: time)")
need tar tar; need xz xz-utils; need ar binutils; need du coreutils; need diff diffutils
need apt-get apt; need dd coreutils; need awk mawk
for t in $TOOLS; do
    case "$t" in
        bms|bms-enc) [ "$PREPARE_ONLY" = 1 ] || [ -x "$BMSCTL" ] || missing+=("$BMSCTL (cargo build --release -p bmsctl in $SRC_ROOT, or set BMSCTL)") ;;
        restic) need restic restic ;;
        borg) need borg borgbackup ;;
        tar) need zstd zstd ;;
        *) die "unknown tool '$t' (known: bms bms-enc restic borg tar)" ;;
    esac
done
need zstd zstd   # also decompresses the .deb data tarballs
KSRC=/usr/src/linux-source-6.1.tar.xz
[ -f "$KSRC" ] || missing+=("$KSRC (Debian package: linux-source-6.1)")
if [ ${#missing[@]} -gt 0 ]; then
    log "missing tools:"
    for m in "${missing[@]}"; do echo "  - $m" >&2; done
    echo "install with: apt-get update && apt-get install -y time restic borgbackup zstd xz-utils binutils linux-source-6.1" >&2
    exit 1
fi

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
CORPUS=$BENCH_DIR/corpus-$CORPUS_KIND
ORIG=$BENCH_DIR/corpus-$CORPUS_KIND.touched-originals
STAMP=$BENCH_DIR/corpus-$CORPUS_KIND.complete
STAMP_TEXT="linux-source-6.1 + debs: $DEBS + random ${RANDOM_MIB}MiB"
RUN_ID=$(date +%Y%m%d-%H%M%S)
RUN=$BENCH_DIR/run-$RUN_ID
REPOS=$RUN/repos
RESULTS=$RUN/results.tsv
OUT=${OUT:-$BENCH_DIR/results-$RUN_ID.md}

# --------------------------------------------------------------- cleanup
cleanup() {
    # Repositories, restores and caches of this run go; the corpus stays (it costs minutes to build),
    # `--purge` removes it. Logs and results stay in $RUN.
    rm -rf --one-file-system "$REPOS" "$RUN/restore" "$RUN/cache" 2>/dev/null
    untouch
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Undo the 1% rewrite of a previous (possibly interrupted) run: the originals were moved aside.
untouch() {
    [ -d "$ORIG" ] || return 0
    (cd "$ORIG" && find . -type f -print0) | while IFS= read -r -d '' f; do
        mv -f "$ORIG/$f" "$CORPUS/$f"
    done
    rm -rf "$ORIG"
}

# ---------------------------------------------------------------- corpus
build_corpus() {
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
        untouch
        log "corpus: reusing $CORPUS"
        return
    fi
    log "corpus: building $CORPUS ($STAMP_TEXT)"
    rm -rf "$CORPUS" "$ORIG" "$STAMP"
    mkdir -p "$CORPUS/large"
    if [ "$CORPUS_KIND" = full ]; then
        xz -dc -T0 "$KSRC" | tar -xf - -C "$CORPUS" || die "unpacking $KSRC"
    else
        xz -dc -T0 "$KSRC" | tar -xf - -C "$CORPUS" --wildcards \
            'linux-source-6.1/fs/*' 'linux-source-6.1/kernel/*' 'linux-source-6.1/include/*' \
            'linux-source-6.1/net/*' || die "unpacking $KSRC"
    fi
    local dl=$BENCH_DIR/debs
    mkdir -p "$dl"
    for p in $DEBS; do
        local deb
        deb=$(ls "$dl"/"${p}"_*.deb 2>/dev/null | head -1)
        if [ -z "$deb" ]; then
            (cd "$dl" && apt-get download "$p" >&2) || die "apt-get download $p failed (run apt-get update?)"
            deb=$(ls "$dl"/"${p}"_*.deb | head -1)
        fi
        local tmp=$BENCH_DIR/ar.tmp
        rm -rf "$tmp"; mkdir -p "$tmp"
        (cd "$tmp" && ar x "$deb") || die "ar x $deb"
        local data
        data=$(ls "$tmp"/data.tar.* | head -1)
        case "$data" in
            *.xz) xz -dc -T0 "$data" ;;
            *.zst) zstd -dc -q "$data" ;;
            *.gz) gzip -dc "$data" ;;
            *) die "unknown data tarball $data" ;;
        esac > "$CORPUS/large/$p.data.tar" || die "decompressing $data"
        rm -rf "$tmp"
    done
    dd if=/dev/urandom of="$CORPUS/large/random.bin" bs=1M count="$RANDOM_MIB" status=none \
        || die "writing random data"
    sync
    echo "$STAMP_TEXT" > "$STAMP"
}

# Rewrites every 100th non-empty regular file (sorted order): the original is moved aside
# (so it can be put back), a copy with 64 bytes changed in the middle is renamed into its place
# (new inode, new mtime, same size), as an editor saving a file would do.
touch_one_percent() {
    rm -rf "$ORIG"; mkdir -p "$ORIG"
    local n=0 i=0
    while IFS= read -r -d '' f; do
        i=$((i + 1))
        [ $((i % 100)) -eq 0 ] || continue
        local rel=${f#"$CORPUS"/} size
        size=$(stat -c %s "$f")
        mkdir -p "$ORIG/$(dirname "$rel")"
        cp -p "$f" "$f.bench-tmp"
        head -c 64 /dev/urandom | dd of="$f.bench-tmp" bs=1 seek=$((size / 2)) conv=notrunc status=none
        truncate -s "$size" "$f.bench-tmp"
        mv "$f" "$ORIG/$rel"
        mv "$f.bench-tmp" "$f"
        n=$((n + 1))
    done < <(find "$CORPUS" -type f -size +0 -print0 | LC_ALL=C sort -z)
    sync
    echo "$n"
}

# ------------------------------------------------------------- measuring
DROP_CACHES=yes
drop_caches() {
    sync
    if ! { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
        [ "$DROP_CACHES" = yes ] && log "warning: cannot drop the page cache (not root, or /proc/sys read-only); reads are not cold"
        DROP_CACHES=no
    fi
}

# measure TOOL PHASE SYNCDIR -- CMD...   (runs CMD under GNU time with a cold page cache,
# then syncs the filesystem of SYNCDIR; wall time includes that sync)
measure() {
    local tool=$1 phase=$2 syncdir=$3; shift 4
    local base=$RUN/logs/r$ROUND.$tool.$phase
    drop_caches
    log "$tool $phase: $*"
    local start end rc
    start=$(date +%s.%N)
    /usr/bin/time -f '%e %U %S %M' -o "$base.time" -- "$@" > "$base.log" 2>&1
    rc=$?
    sync -f "$syncdir" 2>/dev/null || sync
    end=$(date +%s.%N)
    local e u s m
    read -r e u s m < <(tail -n 1 "$base.time")
    local wall
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}')
    local status=ok
    if [ "$rc" -ne 0 ]; then
        local msg
        msg=$(grep -v '^\s*$' "$base.log" | tail -n 2 | tr '\t\n|' '  /' | cut -c1-300)
        status="FAILED (exit $rc): ${msg:-no output}"
        log "$tool $phase failed, exit $rc; see $base.log"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$tool" "$phase" "$wall" "$u" "$s" "$m" "$status" >> "$RESULTS"
    return "$rc"
}

repo_size() { du -sb "$1" 2>/dev/null | cut -f1; }
record_size() { printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$(repo_size "$3")" >> "$RUN/sizes.tsv"; }

# ----------------------------------------------------------------- tools
export RESTIC_PASSWORD=bms-bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

tool_init() {
    local t=$1 r=$REPOS/$1
    case "$t" in
        bms) "$BMSCTL" repo init "$r" ;;
        bms-enc) rm -f "$RUN/bms-enc.key"; "$BMSCTL" repo init "$r" --encrypt --key-file "$RUN/bms-enc.key" ;;
        restic) restic -r "$r" init --repository-version 2 ;;
        borg) borg init --encryption none "$r" ;;
        tar) mkdir -p "$r" ;;
    esac > "$RUN/logs/r$ROUND.$t.init.log" 2>&1
}

tool_backup() { # TOOL N
    local t=$1 n=$2 r=$REPOS/$1
    case "$t" in
        bms) measure bms "backup$n" "$r" -- "$BMSCTL" repo backup "$r" "$CORPUS" ;;
        bms-enc) measure bms-enc "backup$n" "$r" -- "$BMSCTL" repo backup "$r" "$CORPUS" --key-file "$RUN/bms-enc.key" ;;
        restic) measure restic "backup$n" "$r" -- restic -r "$r" --compression auto backup "$CORPUS" ;;
        borg) measure borg "backup$n" "$r" -- borg create --compression "$BORG_COMPRESSION" "$r::b$n" "$CORPUS" ;;
        tar)
            # GNU tar incremental: level 0, then level-1 dumps against the level-0 snapshot file.
            if [ "$n" = 1 ]; then rm -f "$r/l0.snar"; else cp "$r/l0.snar" "$r/l$n.snar"; fi
            local snar=$r/l$((n == 1 ? 0 : n)).snar
            measure tar "backup$n" "$r" -- bash -c 'tar --listed-incremental="$1" -cf - -C "$2" "$3" | zstd -1 -T0 -q -f -o "$4"' \
                _ "$snar" "$(dirname "$CORPUS")" "$(basename "$CORPUS")" "$r/b$n.tar.zst"
            ;;
    esac
    record_size "$t" "backup$n" "$r"
}

tool_restore() { # TOOL DEST
    local t=$1 d=$2 r=$REPOS/$1
    mkdir -p "$d"
    case "$t" in
        bms) measure bms restore "$d" -- "$BMSCTL" repo restore "$r" latest --to "$d" ;;
        bms-enc) measure bms-enc restore "$d" -- "$BMSCTL" repo restore "$r" latest --to "$d" --key-file "$RUN/bms-enc.key" ;;
        restic) measure restic restore "$d" -- restic -r "$r" restore latest --target "$d" ;;
        borg) measure borg restore "$d" -- bash -c 'cd "$1" && borg extract "$2"' _ "$d" "$r::b3" ;;
        tar) measure tar restore "$d" -- bash -c 'set -e; for a in "$2"/b1.tar.zst "$2"/b3.tar.zst; do zstd -dc -q "$a" | tar --listed-incremental=/dev/null -xf - -C "$1"; done' _ "$d" "$r" ;;
        cp) measure "cp -a" restore "$d" -- cp -a "$CORPUS" "$d/" ;;
    esac
}

tool_verify() {
    local t=$1 r=$REPOS/$1
    case "$t" in
        bms) measure bms verify "$r" -- "$BMSCTL" repo verify "$r" --read-data ;;
        bms-enc) measure bms-enc verify "$r" -- "$BMSCTL" repo verify "$r" --read-data --key-file "$RUN/bms-enc.key" ;;
        restic) measure restic verify "$r" -- restic -r "$r" check --read-data ;;
        borg) measure borg verify "$r" -- borg check --verify-data "$r" ;;
        tar) measure tar verify "$r" -- bash -c 'zstd -t -q "$1"/*.tar.zst' _ "$r" ;;
    esac
}

# Compares a restored tree with the corpus (content, names, symlinks); not timed.
check_restore() { # TOOL DEST
    local t=$1 d=$2 found
    found=$(find "$d" -type d -name "$(basename "$CORPUS")" -print -quit 2>/dev/null)
    if [ -z "$found" ]; then
        # bms may restore the source's contents directly into the target
        [ -d "$d/large" ] && found=$d
    fi
    local verdict
    if [ -z "$found" ]; then
        verdict="restored tree not found under $d"
    elif diff -rq --no-dereference "$CORPUS" "$found" > "$RUN/logs/r$ROUND.$t.restore-diff.log" 2>&1; then
        verdict="identical to the corpus"
    else
        verdict="DIFFERS from the corpus: $(wc -l < "$RUN/logs/r$ROUND.$t.restore-diff.log") difference(s), e.g. $(head -n 1 "$RUN/logs/r$ROUND.$t.restore-diff.log" | cut -c1-200)"
    fi
    printf '%s\t%s\t%s\n' "$ROUND" "$t" "$verdict" >> "$RUN/restore-check.tsv"
    log "$t restore: $verdict"
}

# ------------------------------------------------------------------- run
mkdir -p "$RUN/logs" "$REPOS" "$RUN/cache"
if case " $TOOLS " in *" bms "* | *" bms-enc "*) true ;; *) false ;; esac; then
    # a private copy: other builds in the tree may replace target/release/bmsctl during the run
    cp "$BMSCTL" "$RUN/bmsctl" && BMSCTL_SRC=$BMSCTL && BMSCTL=$RUN/bmsctl
fi
export RESTIC_CACHE_DIR=$RUN/cache/restic BORG_BASE_DIR=$RUN/cache/borg
: > "$RESULTS"; : > "$RUN/sizes.tsv"; : > "$RUN/restore-check.tsv"

build_corpus
if [ "$PREPARE_ONLY" = 1 ]; then log "corpus ready: $CORPUS"; rm -rf "$RUN"; exit 0; fi
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
CORPUS_BYTES=$(du -sb --apparent-size "$CORPUS" | cut -f1)
LARGE_DESC=$(cd "$CORPUS/large" && for f in *; do printf '%s (%s MiB), ' "$f" $(( $(stat -c %s "$f") / 1048576 )); done)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
log "corpus: $CORPUS_FILES files, $CORPUS_DIRS dirs, $CORPUS_BYTES bytes; tools: $TOOLS"

for ROUND in $(seq 1 "$REPEAT"); do
    [ "$REPEAT" -gt 1 ] && log "round $ROUND of $REPEAT"
    rm -rf "$REPOS" "$RUN/cache"; mkdir -p "$REPOS"
    for t in $TOOLS; do tool_init "$t" || log "$t: init failed, see $RUN/logs/r$ROUND.$t.init.log"; done
    for t in $TOOLS; do tool_backup "$t" 1; done
    for t in $TOOLS; do tool_backup "$t" 2; done
    log "rewriting 1% of the files"
    TOUCHED=$(touch_one_percent)
    log "rewrote $TOUCHED files"
    for t in $TOOLS; do tool_backup "$t" 3; done
    for t in cp $TOOLS; do
        dest=$RUN/restore/$t
        rm -rf "$dest"
        tool_restore "$t" "$dest"
        if [ "$t" != cp ] && [ "$CHECK_RESTORE" = 1 ]; then check_restore "$t" "$dest"; fi
        rm -rf "$dest"
    done
    for t in $TOOLS; do tool_verify "$t"; done
    untouch
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(date +%s)
untouch

# ---------------------------------------------------------------- report
version() {
    case "$1" in
        bms|bms-enc) echo "bmsctl $("$BMSCTL" --version 2>/dev/null | awk '{print $NF}') (binary ${BMSCTL_SRC:-$BMSCTL} built $(date -r "${BMSCTL_SRC:-$BMSCTL}" '+%F %H:%M'), sha256 $(sha256sum "$BMSCTL" | cut -c1-12), tree at $(git -C "$SRC_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$SRC_ROOT" diff --quiet HEAD -- engine ctl 2>/dev/null || echo ', engine/ctl with uncommitted changes'))" ;;
        restic) restic version | awk '{print "restic " $2}' ;;
        borg) borg --version ;;
        tar) echo "$(tar --version | head -n 1), zstd $(zstd --version | grep -o 'v[0-9.]*')" ;;
    esac
}

# Aggregates the rounds: one line per tool and phase, in the order measured, with the median
# wall/user/sys time, the wall-time range, the largest peak RSS, the median repository size, and
# "ok" or the first failure. Fields: tool phase wall wall_min wall_max user sys rss_kib size status (1-10)
aggregate() {
    awk -F'\t' -v sizes="$RUN/sizes.tsv" '
        function median(list,   a, n, i, j, t) {
            n = split(list, a, " ")
            for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function minof(list,   a, n, i, m) { n = split(list, a, " "); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 < m) m = a[i] + 0; return m }
        function maxof(list,   a, n, i, m) { n = split(list, a, " "); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
        BEGIN { while ((getline l < sizes) > 0) { split(l, a, "\t"); sz[a[2] "\t" a[3]] = sz[a[2] "\t" a[3]] " " a[4] } }
        {
            k = $2 "\t" $3
            if (!(k in seen)) { seen[k] = 1; order[++n] = k; status[k] = "ok" }
            if ($8 != "ok") { if (status[k] == "ok") status[k] = "round " $1 ": " $8; next }
            wall[k] = wall[k] " " $4; usr[k] = usr[k] " " $5; sys[k] = sys[k] " " $6
            if ($7 + 0 > rss[k]) rss[k] = $7 + 0
        }
        END {
            for (i = 1; i <= n; i++) {
                k = order[i]
                if (wall[k] == "") { printf "%s\t\t\t\t\t\t\t\t%s\n", k, status[k]; continue }
                printf "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\n", k, median(wall[k]), minof(wall[k]), maxof(wall[k]),
                    median(usr[k]), median(sys[k]), rss[k], (k in sz) ? sprintf("%.0f", median(sz[k])) : "", status[k]
            }
        }' "$RESULTS"
}

version() {
    case "$1" in
        bms|bms-enc) echo "bmsctl $("$BMSCTL" --version 2>/dev/null | awk '{print $NF}') (binary ${BMSCTL_SRC:-$BMSCTL} built $(date -r "${BMSCTL_SRC:-$BMSCTL}" '+%F %H:%M'), sha256 $(sha256sum "$BMSCTL" | cut -c1-12), tree at $(git -C "$SRC_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$SRC_ROOT" diff --quiet HEAD -- engine ctl 2>/dev/null || echo ', engine/ctl with uncommitted changes'))" ;;
        restic) restic version | awk '{print "restic " $2}' ;;
        borg) borg --version ;;
        tar) echo "$(tar --version | head -n 1), zstd $(zstd --version | grep -o 'v[0-9.]*')" ;;
    esac
}

report() {
    echo "## bms repository benchmark, run $RUN_ID"
    echo
    echo "- corpus ($CORPUS_KIND): $CORPUS_FILES files, $CORPUS_DIRS directories, $(awk -v b="$CORPUS_BYTES" 'BEGIN{printf "%.2f GiB", b/2^30}') — Linux 6.1 source tree (Debian linux-source-6.1) + ${LARGE_DESC%, }"
    echo "- 1% rewrite: $TOUCHED files (every 100th non-empty file in sorted order, 64 bytes changed in the middle, saved as a new inode)"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/{printf "%.0f GiB", $2/2^20}' /proc/meminfo) RAM, $(df -T "$BENCH_DIR" | awk 'NR==2{print $2}') on $(df "$BENCH_DIR" | awk 'NR==2{print $1}'), kernel $(uname -r)"
    echo "- load average at start / end: $LOAD_START / $LOAD_END (other work on the machine shows here); run took $(( (T_END - T_START) / 60 )) min"
    echo "- rounds: $REPEAT$([ "$REPEAT" -gt 1 ] && echo ' (figures are medians; wall range = fastest–slowest round; peak RSS = largest)')"
    echo "- page cache dropped before each phase: $DROP_CACHES"
    echo "- versions: $(for t in $TOOLS; do version "$t"; done | paste -sd ';' | sed 's/;/; /g')"
    echo "- settings: bms defaults (zstd 3, FastCDC 256K/1M/4M, no encryption); restic repository v2, --compression auto, AES-256 + Poly1305 (always on); borg --encryption none, --compression $BORG_COMPRESSION; tar --listed-incremental | zstd -1 -T0"
    echo "- wall time includes a final \`sync -f\` of the repository (backups) or target (restores) filesystem, for every tool"
    echo
    echo "| tool | phase | wall s | wall range s | MiB/s | user s | sys s | CPU s | peak RSS MiB | repo size MiB | status |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    aggregate | awk -F'\t' -v bytes="$CORPUS_BYTES" '
        $3 == "" { printf "| %s | %s | | | | | | | | | %s |\n", $1, $2, $10; next }
        {
            mibs = ($2 == "backup1" || $2 == "restore" || $2 == "verify") ? sprintf("%.0f", bytes / 2^20 / $3) : ""
            size = $9 == "" ? "" : sprintf("%.0f", $9 / 2^20)
            printf "| %s | %s | %.1f | %.1f–%.1f | %s | %.1f | %.1f | %.1f | %.0f | %s | %s |\n", $1, $2, $3, $4, $5, mibs, $6, $7, $6 + $7, $8 / 1024, size, $10
        }'
    echo
    echo "MiB/s = corpus size / wall time (for verify too: corpus size, not repository size)."
    if [ -s "$RUN/restore-check.tsv" ]; then
        echo
        echo "Restored trees compared with the corpus (diff -r):"
        echo
        awk -F'\t' '{printf "- round %s, %s: %s\n", $1, $2, $3}' "$RUN/restore-check.tsv"
    fi
    case " $TOOLS " in *" bms "*) targets ;; esac
}

# The issue's targets, computed from the medians.
targets() {
    aggregate | awk -F'\t' -v results="$RESULTS" -v rounds="$REPEAT" '
        BEGIN {
            # per-round wall times, for the range of each ratio over the rounds
            while ((getline l < results) > 0) { split(l, a, "\t"); if (a[8] == "ok") rw[a[1] "\t" a[2] "\t" a[3]] = a[4] }
        }
        { k = $1 "\t" $2; ok[k] = ($3 != "" && $10 == "ok"); w[k] = $3; sz[k] = $9
          if ($1 == "bms" && $8 + 0 > rss) rss = $8 + 0; if ($1 == "bms" && $10 != "ok") bmsfail = 1 }
        function has(t, p) { return ok[t "\t" p] }
        function W(t, p) { return w[t "\t" p] }
        # range over the rounds of wall(t1,p1)/wall(t2,p2), as " (rounds: a–b)"
        function range(t1, p1, t2, p2,   r, x, lo, hi, n) {
            if (rounds < 2) return ""
            for (r = 1; r <= rounds; r++) {
                if (!((r "\t" t1 "\t" p1) in rw) || !((r "\t" t2 "\t" p2) in rw) || rw[r "\t" t2 "\t" p2] <= 0) continue
                x = rw[r "\t" t1 "\t" p1] / rw[r "\t" t2 "\t" p2]
                if (n++ == 0 || x < lo) lo = x; if (n == 1 || x > hi) hi = x
            }
            return n ? sprintf(" (per round: %.2f–%.2f)", lo, hi) : ""
        }
        function line(name, cond, avail, detail) {
            printf "| %s | %s | %s |\n", name, !avail ? "n/a" : (cond ? "met" : "**not met**"), detail
        }
        END {
            print ""
            print "| target | verdict (on the medians) | measured |"
            print "|---|---|---|"
            b = has("bms", "backup1")
            r = b && has("restic", "backup1"); line("first backup ≥2× restic throughput", r && W("restic", "backup1") / W("bms", "backup1") >= 2, r, r ? sprintf("%.2f×%s", W("restic", "backup1") / W("bms", "backup1"), range("restic", "backup1", "bms", "backup1")) : "")
            r = b && has("borg", "backup1"); line("first backup ≥3× borg throughput", r && W("borg", "backup1") / W("bms", "backup1") >= 3, r, r ? sprintf("%.2f×%s", W("borg", "backup1") / W("bms", "backup1"), range("borg", "backup1", "bms", "backup1")) : "")
            r = b && has("tar", "backup1"); line("first backup within 1.5× of tar+zstd -1", r && W("bms", "backup1") / W("tar", "backup1") <= 1.5, r, r ? sprintf("bms takes %.2f× the tar+zstd wall time%s", W("bms", "backup1") / W("tar", "backup1"), range("bms", "backup1", "tar", "backup1")) : "")
            r = has("bms", "backup2") && has("restic", "backup2"); line("no-op backup ≥5× faster than restic", r && W("restic", "backup2") / W("bms", "backup2") >= 5, r, r ? sprintf("%.2f×%s", W("restic", "backup2") / W("bms", "backup2"), range("restic", "backup2", "bms", "backup2")) : "")
            r = has("bms", "restore") && has("cp -a", "restore"); line("restore no slower than cp -a", r && W("bms", "restore") <= W("cp -a", "restore"), r, r ? sprintf("%.1f s vs %.1f s; cp -a / bms %.2f×%s", W("bms", "restore"), W("cp -a", "restore"), W("cp -a", "restore") / W("bms", "restore"), range("cp -a", "restore", "bms", "restore")) : "")
            r = has("bms", "restore") && has("restic", "restore") && has("borg", "restore"); line("restore faster than restic and borg", r && W("bms", "restore") < W("restic", "restore") && W("bms", "restore") < W("borg", "restore"), r, r ? sprintf("%.1f s vs %.1f s (restic) / %.1f s (borg); restic / bms %.2f×%s", W("bms", "restore"), W("restic", "restore"), W("borg", "restore"), W("restic", "restore") / W("bms", "restore"), range("restic", "restore", "bms", "restore")) : "")
            r = has("bms", "verify") && has("restic", "verify"); line("full verify ≥2× restic check --read-data", r && W("restic", "verify") / W("bms", "verify") >= 2, r, r ? sprintf("%.2f×%s", W("restic", "verify") / W("bms", "verify"), range("restic", "verify", "bms", "verify")) : "")
            k1 = "bms\tbackup3"; k2 = "restic\tbackup3"; r = has("bms", "backup3") && sz[k1] != "" && sz[k2] > 0
            line("repository size within 10% of restic", r && sz[k1] <= 1.1 * sz[k2], r, r ? sprintf("%+.1f%% (after the 3 backups)", 100 * (sz[k1] / sz[k2] - 1)) : "")
            r = b && has("bms-enc", "backup1"); line("encrypted first backup ≤10% more wall time than plain", r && W("bms-enc", "backup1") <= 1.1 * W("bms", "backup1"), r, r ? sprintf("%+.1f%%", 100 * (W("bms-enc", "backup1") / W("bms", "backup1") - 1)) : "")
            r = has("bms", "restore") && has("bms-enc", "restore"); line("encrypted restore ≤10% slower than plain", r && W("bms-enc", "restore") <= 1.1 * W("bms", "restore"), r, r ? sprintf("%+.1f%%", 100 * (W("bms-enc", "restore") / W("bms", "restore") - 1)) : "")
            r = has("bms", "verify") && has("bms-enc", "verify"); line("encrypted verify ≤10% slower than plain", r && W("bms-enc", "verify") <= 1.1 * W("bms", "verify"), r, r ? sprintf("%+.1f%%", 100 * (W("bms-enc", "verify") / W("bms", "verify") - 1)) : "")
            r = has("bms-enc", "backup1") && has("restic", "backup1"); line("encrypted first backup ≥2× restic throughput", r && W("restic", "backup1") / W("bms-enc", "backup1") >= 2, r, r ? sprintf("%.2f×", W("restic", "backup1") / W("bms-enc", "backup1")) : "")
            line("peak RSS < 256 MiB", rss > 0 && rss < 256 * 1024, rss > 0, sprintf("%.0f MiB (largest over all bms phases)%s", rss / 1024, bmsfail ? "; some bms phases failed" : ""))
        }'
}

report | tee "$OUT"
cp "$OUT" "$RUN/results.md"
log "results: $OUT (logs in $RUN/logs)"
