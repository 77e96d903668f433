#!/usr/bin/env bash
# S3 benchmark (docs/performance.md "S3"): the benchmark corpus of bench/run.sh backed up by bmsd
# to a local disk target and to an S3 target on a loopback S3 server, and by restic to the same
# server (its S3 backend); then restores of the latest snapshot from each. bmsd runs the backups
# and restores (an S3 repository is reached through bmsd's targets), restic runs by itself.
#
# Usage: bench/s3.sh [--small] [--server "moto s3s-fs"] [--parallel "2 4 8 16"] [--out FILE]
#   --server   which S3 servers to run against: moto (python3 -m moto.server, in memory) and/or
#              s3s-fs (files in a directory; S3S_FS names the binary, default
#              $BENCH_DIR/s3s/bin/s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary --root $BENCH_DIR/s3s)
#   --parallel also back up and restore with each --s3-parallel N (the sweep of docs/s3.md)
# Environment: BENCH_DIR (default /var/tmp/bms-bench), BMSD/BMSCTL (default target/release/…),
# BENCH_CORPUS=small|full (default full), BENCH_CHECK_RESTORE=1 (diff -r each restore, not timed).
# The corpus is bench/run.sh's (built by it with --prepare when missing).
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/bms-bench}
BMSD=${BMSD:-$SRC_ROOT/target/release/bmsd}
BMSCTL=${BMSCTL:-$SRC_ROOT/target/release/bmsctl}
CORPUS_KIND=${BENCH_CORPUS:-full}
SERVERS=${BENCH_S3_SERVERS:-moto}
PARALLEL=${BENCH_S3_PARALLEL:-}
CHECK_RESTORE=${BENCH_CHECK_RESTORE:-1}
S3S_FS=${S3S_FS:-$BENCH_DIR/s3s/bin/s3s-fs}
OUT=${BENCH_OUT:-}

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --small) CORPUS_KIND=small ;;
        --full) CORPUS_KIND=full ;;
        --server) SERVERS=$2; shift ;;
        --parallel) PARALLEL=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
    shift
done

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
for b in "$BMSD" "$BMSCTL"; do
    [ -x "$b" ] || missing+=("$b (cargo build --release -p bmsd -p bmsctl --bins, or set BMSD/BMSCTL)")
done
command -v restic >/dev/null || missing+=("restic (apt-get install -y restic)")
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (apt-get install -y time)")
for s in $SERVERS; do
    case "$s" in
        moto) python3 -c 'import moto.server' 2>/dev/null || missing+=("moto (pip install 'moto[server]')") ;;
        s3s-fs) [ -x "$S3S_FS" ] || missing+=("$S3S_FS (cargo install s3s-fs --version 0.14.1 --features binary --root $BENCH_DIR/s3s, or set S3S_FS)") ;;
        *) die "unknown server '$s' (known: moto s3s-fs)" ;;
    esac
done
if [ ${#missing[@]} -gt 0 ]; then
    log "missing:"; for m in "${missing[@]}"; do echo "  - $m" >&2; done; exit 1
fi
for n in $PARALLEL; do
    case "$n" in ''|*[!0-9]*) die "--parallel takes numbers, e.g. \"2 4 8 16\"" ;; esac
done

CORPUS=$BENCH_DIR/corpus-$CORPUS_KIND
if [ ! -f "$BENCH_DIR/corpus-$CORPUS_KIND.complete" ]; then
    log "corpus: building it with bench/run.sh --prepare"
    BENCH_DIR=$BENCH_DIR "$SCRIPT_DIR/run.sh" --prepare "--$CORPUS_KIND" || die "building the corpus"
fi
[ -d "$BENCH_DIR/corpus-$CORPUS_KIND.touched-originals" ] && die "the corpus has rewritten files of an interrupted bench/run.sh: run it once to put them back"
CORPUS_BYTES=$(du -sb "$CORPUS" | cut -f1)
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)

RUN_ID=$(date +%Y%m%d-%H%M%S)
RUN=$BENCH_DIR/s3-run-$RUN_ID
OUT=${OUT:-$BENCH_DIR/s3-results-$RUN_ID.md}
mkdir -p "$RUN/logs" "$RUN/state" "$RUN/repos" "$RUN/restore" || die "cannot create $RUN"
RESULTS=$RUN/results.tsv
: > "$RESULTS"
SOCK=$RUN/bmsd.sock
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf --one-file-system "$RUN/repos" "$RUN/restore" "$RUN/s3data" "$RUN/cache" "$RUN/state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_secs() { # user + system seconds of a process so far
    awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0
}
drop_caches() {
    sync
    { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || DROPPED=no
}
DROPPED=yes

ACCESS=AKIABMSBENCH0000
SECRET=bms-bench-secret-key-0000
export AWS_ACCESS_KEY_ID=$ACCESS AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=us-east-1
export RESTIC_PASSWORD=bms-bench RESTIC_CACHE_DIR=$RUN/cache
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$ACCESS" "$SECRET" > "$RUN/s3.credentials"
chmod 600 "$RUN/s3.credentials"

"$BMSD" --state-dir "$RUN/state" --socket "$SOCK" --log-target stderr --log-level warn 2>>"$RUN/logs/bmsd.log" &
BMSD_PID=$!
pids+=("$BMSD_PID")
ctl() { "$BMSCTL" --socket "$SOCK" "$@"; }
for _ in $(seq 300); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl status >/dev/null 2>&1 || die "bmsd did not come up: $(tail -n 5 "$RUN/logs/bmsd.log")"

SERVER_PID=
# record SERVER TOOL PHASE WALL CPU SERVER_CPU STATUS
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }

# timed SERVER TOOL PHASE SYNCDIR -- CMD...: cold cache, wall time including a sync of SYNCDIR's
# filesystem; CPU of bmsd (bms) or of the command (restic), and of the S3 server.
timed() {
    local server=$1 tool=$2 phase=$3 syncdir=$4; shift 5
    local base=$RUN/logs/$server.$tool.$phase
    drop_caches
    log "$server $tool $phase"
    local b0 s0 t0 rc
    b0=$(cpu_secs "$BMSD_PID"); s0=$( [ -n "$SERVER_PID" ] && cpu_secs "$SERVER_PID" || echo 0)
    t0=$(date +%s.%N)
    /usr/bin/time -f '%e %U %S %M' -o "$base.time" -- "$@" > "$base.log" 2>&1
    rc=$?
    sync -f "$syncdir" 2>/dev/null || sync
    local wall cpu scpu
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
    if [ "${tool%%-*}" = restic ]; then
        cpu=$(tail -n 1 "$base.time" | awk '{printf "%.2f", $2 + $3}')
    else
        cpu=$(awk -v a="$b0" -v b="$(cpu_secs "$BMSD_PID")" 'BEGIN{printf "%.2f", b-a}')
    fi
    scpu=$( [ -n "$SERVER_PID" ] && awk -v a="$s0" -v b="$(cpu_secs "$SERVER_PID")" 'BEGIN{printf "%.2f", b-a}' || echo "")
    local status=ok
    if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc): $(grep -v '^\s*$' "$base.log" | tail -n 2 | tr '\t\n|' '  /' | cut -c1-200)"
        log "$server $tool $phase failed; see $base.log"
    fi
    record "$server" "$tool" "$phase" "$wall" "$cpu" "$scpu" "$status"
    return "$rc"
}

check_restore() {
    [ "$CHECK_RESTORE" = 1 ] || return 0
    if diff -r --no-dereference "$CORPUS" "$1" > "$RUN/logs/diff.$2.log" 2>&1; then
        echo "- $2: identical" >> "$RUN/restore-check.md"
    else
        echo "- $2: **differs** ($(wc -l < "$RUN/logs/diff.$2.log") lines of diff -r)" >> "$RUN/restore-check.md"
    fi
}

# bms_round SERVER TOOL TARGET: a job backing the corpus up to TARGET, its run and a restore.
bms_round() {
    local server=$1 tool=$2 target=$3 job="j-$2-$1"
    ctl job add "$job" --source "$CORPUS" --target "$target" --schedule "2099-01-01 00:00:00" \
        > "$RUN/logs/$job.add.log" 2>&1 || { record "$server" "$tool" backup "" "" "" "FAILED: job add: $(tail -n 1 "$RUN/logs/$job.add.log")"; return; }
    local syncdir=$RUN/repos
    timed "$server" "$tool" backup "$syncdir" -- "$BMSCTL" --socket "$SOCK" job run "$job" --wait || return
    local snap
    snap=$(ctl --json snapshot list --job "$job" --target "$target" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["id"])')
    local to=$RUN/restore/$tool-$server
    timed "$server" "$tool" restore "$RUN/restore" -- "$BMSCTL" --socket "$SOCK" restore "$snap" --target "$target" --to "$to" || return
    check_restore "$to${CORPUS}" "$tool ($server)"
    rm -rf --one-file-system "$to"
}

# -------------------------------------------------------------- local disk
mkdir -p "$RUN/repos/disk"
ctl target add disk --path "$RUN/repos/disk" > "$RUN/logs/target.disk.log" 2>&1 || die "target add disk: $(cat "$RUN/logs/target.disk.log")"
bms_round local bms-disk disk
rm -rf --one-file-system "$RUN/repos/disk"/* 2>/dev/null

# --------------------------------------------------------------- S3 servers
start_server() {
    local s=$1 port
    port=$(free_port)
    case "$s" in
        moto)
            python3 -m moto.server -H 127.0.0.1 -p "$port" > "$RUN/logs/moto.log" 2>&1 &
            SERVER_PID=$! ;;
        s3s-fs)
            mkdir -p "$RUN/s3data"
            "$S3S_FS" --host 127.0.0.1 --port "$port" --access-key "$ACCESS" --secret-key "$SECRET" \
                "$RUN/s3data" > "$RUN/logs/s3s-fs.log" 2>&1 &
            SERVER_PID=$! ;;
    esac
    pids+=("$SERVER_PID")
    URL=http://127.0.0.1:$port
    for _ in $(seq 600); do
        curl -s -o /dev/null "$URL/" && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "$s exited: $(tail -n 5 "$RUN/logs/$s.log")"
        sleep 0.1
    done
    # The bucket: restic creates it when missing (signed, so any server takes it).
    restic -r "s3:$URL/bench/restic" init > "$RUN/logs/$s.restic-init.log" 2>&1 \
        || die "restic init on $s: $(tail -n 3 "$RUN/logs/$s.restic-init.log")"
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
    rm -rf --one-file-system "$RUN/s3data"
}

for s in $SERVERS; do
    start_server "$s"
    n=0
    for p in default $PARALLEL; do
        n=$((n + 1))
        t="s3-$s-$n"
        extra=()
        [ "$p" = default ] || extra=(--s3-parallel "$p")
        ctl target add "$t" --kind s3 --url "$URL" --bucket bench --prefix "bms-$n" \
            --credentials-file "$RUN/s3.credentials" "${extra[@]}" > "$RUN/logs/target.$t.log" 2>&1 \
            || { record "$s" "bms-s3-p$p" backup "" "" "" "FAILED: target add: $(tail -n 1 "$RUN/logs/target.$t.log")"; continue; }
        bms_round "$s" "bms-s3-p$p" "$t"
    done
    to=$RUN/restore/restic-$s
    if timed "$s" restic-s3 backup "$RUN" -- restic -r "s3:$URL/bench/restic" backup --compression auto "$CORPUS"; then
        timed "$s" restic-s3 restore "$RUN/restore" -- restic -r "s3:$URL/bench/restic" restore latest --target "$to" \
            && check_restore "$to$CORPUS" "restic ($s)"
        rm -rf --one-file-system "$to"
    fi
    stop_server
done

# ------------------------------------------------------------------ report
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "## bms S3 benchmark, run $RUN_ID"
    echo
    echo "- corpus ($CORPUS_KIND): $CORPUS_FILES files, $(awk -v b="$CORPUS_BYTES" 'BEGIN{printf "%.2f GiB", b/2^30}') (bench/run.sh's)"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/2^20}' /proc/meminfo) RAM, load average at the end $LOAD"
    echo "- servers on loopback: $SERVERS; page cache dropped before each phase: $DROPPED"
    echo "- bmsd $("$BMSD" --version 2>/dev/null | awk '{print $NF}') (defaults: zstd 3, no encryption; S3 parallelism as in the tool column, default 8); $(restic version | awk '{print "restic " $2}') (--compression auto, always encrypted)"
    echo "- wall time includes a sync of the filesystem written to; CPU = bmsd's user+system time (bms) or restic's; server CPU = the S3 server's"
    echo
    echo "| server | tool | phase | wall s | MiB/s | CPU s | server CPU s | status |"
    echo "|---|---|---|--:|--:|--:|--:|---|"
    awk -F'\t' -v bytes="$CORPUS_BYTES" '{
        mibs = ($4 > 0) ? sprintf("%.0f", bytes / 2^20 / $4) : ""
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, mibs, $5, $6, $7 }' "$RESULTS"
    if [ -s "$RUN/restore-check.md" ]; then
        echo; echo "Restored trees compared with the corpus (diff -r):"; echo; cat "$RUN/restore-check.md"
    fi
    echo
    echo "| target | server | verdict | measured |"
    echo "|---|---|---|---|"
    awk -F'\t' -v servers="$SERVERS" '
        $7 == "ok" { w[$1 "\t" $2 "\t" $3] = $4 }
        function W(s, t, p) { return w[s "\t" t "\t" p] }
        function line(name, s, ok, have, detail) {
            printf "| %s | %s | %s | %s |\n", name, s, !have ? "n/a" : (ok ? "met" : "**not met**"), detail }
        END {
            n = split(servers, sv, " ")
            for (i = 1; i <= n; i++) {
                s = sv[i]; d = W("local", "bms-disk", "backup"); b = W(s, "bms-s3-pdefault", "backup")
                r = W(s, "restic-s3", "backup"); rb = W(s, "bms-s3-pdefault", "restore"); rr = W(s, "restic-s3", "restore")
                line("S3 backup within 1.5× of local disk", s, b <= 1.5 * d, b > 0 && d > 0, b > 0 && d > 0 ? sprintf("%.1f s vs %.1f s: %.2f×", b, d, b / d) : "")
                line("S3 backup ≥ 2× faster than restic S3", s, r >= 2 * b, b > 0 && r > 0, b > 0 && r > 0 ? sprintf("%.1f s vs %.1f s: %.2f×", b, r, r / b) : "")
                line("S3 restore ≥ 2× faster than restic S3", s, rr >= 2 * rb, rb > 0 && rr > 0, rb > 0 && rr > 0 ? sprintf("%.1f s vs %.1f s: %.2f×", rb, rr, rr / rb) : "")
            }
        }' "$RESULTS"
} | tee "$OUT"
cp "$OUT" "$RUN/results.md"
log "results: $OUT (logs in $RUN/logs)"
