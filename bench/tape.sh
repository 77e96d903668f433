#!/bin/sh
# bench/tape.sh — the tape writer against `tar -cf` on the same disk (docs/performance.md, "Tape").
#
# Writes one tree as a tape archive onto a virtual tape (`bmsctl tape write`, the writer tape
# copies use) and as `tar -cf` into a file of the same directory, with the page cache dropped
# before each when run as root, and prints both wall times and the ratio. Then, through a bmsd
# of its own: backs the tree up into a disk repository, and copies that snapshot to a tape target
# on a virtual library (the copy run's own duration, page cache dropped before it); and restores
# one path from the tape target, counting the bytes bmsd read (/proc/PID/io rchar) against the
# sizes of the tape files on the cartridge (two archives: the path's is the second).
#
#   bench/tape.sh [TREE]    default: the Linux tree of linux-source-6.1 when unpacked under
#                           $BENCH_DIR/linux, else a generated tree of $TAPE_GEN_MIB MiB
# Variables: BMSCTL and BMSD (default <repo>/target/release/{bmsctl,bmsd}), BENCH_DIR
# (/var/tmp/bms-bench-tape), TAPE_GEN_MIB (1024), TAPE_PATH (the path restored, relative to the
# tree; default: the first regular file found in it), TAPE_DAEMON (1; 0 skips the bmsd part),
# TAPE_WRITE (1; 0 skips `bmsctl tape write` and tar).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
BMSCTL=${BMSCTL:-$here/target/release/bmsctl}
BMSD=${BMSD:-$here/target/release/bmsd}
TAPE_DAEMON=${TAPE_DAEMON:-1}
TAPE_WRITE=${TAPE_WRITE:-1}
BENCH_DIR=${BENCH_DIR:-/var/tmp/bms-bench-tape}
TAPE_GEN_MIB=${TAPE_GEN_MIB:-1024}
[ -x "$BMSCTL" ] || { echo "no bmsctl at $BMSCTL: cargo build --release -p bmsctl, or set BMSCTL" >&2; exit 2; }
command -v tar >/dev/null || { echo "GNU tar is needed: apt-get install tar" >&2; exit 2; }
mkdir -p "$BENCH_DIR"
tree=${1:-}
if [ -z "$tree" ]; then
  if [ -d "$BENCH_DIR/linux" ]; then
    tree=$BENCH_DIR/linux
  else
    tree=$BENCH_DIR/gen
    if [ ! -d "$tree" ]; then
      echo "generating a $TAPE_GEN_MIB MiB tree in $tree" >&2
      mkdir -p "$tree"
      i=0
      while [ $i -lt $((TAPE_GEN_MIB / 4)) ]; do
        d=$tree/d$((i % 64)); mkdir -p "$d"
        head -c $((4 << 20)) /dev/urandom > "$d/f$i"
        i=$((i + 1))
      done
      # and many small files, as a source tree has
      mkdir -p "$tree/small"
      i=0
      while [ $i -lt 20000 ]; do printf 'line %s\n' $i > "$tree/small/s$i"; i=$((i + 1)); done
    fi
  fi
fi
drop() { [ "$(id -u)" = 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches || true; }
now() { date +%s.%N; }
bytes=$(du -sb "$tree" | cut -f1)
lib=$BENCH_DIR/vtl
rm -rf "$lib" "$BENCH_DIR/tar.out"
cap=$((bytes * 2 + (1 << 30)))
t2=0; t3=0
if [ "$TAPE_WRITE" = 1 ]; then
"$BMSCTL" tape create-library "$lib" --slots 2 >/dev/null
"$BMSCTL" tape add-cartridge "$lib" BENCH1 --slot 1 --capacity "$cap" >/dev/null
"$BMSCTL" tape label "$lib" BENCH1 --pool bench >/dev/null
drop; t0=$(now)
"$BMSCTL" tape write "$lib" "$tree" --media BENCH1 --snapshot bench >/dev/null
sync; t1=$(now)
drop; t2=$(now)
tar -cf "$BENCH_DIR/tar.out" -C "$tree" .
sync; t3=$(now)
echo "$t0 $t1 $t2 $t3 $bytes" | awk '{ tape = $2 - $1; tar = $4 - $3; mib = $5 / 1048576;
  printf "| tree | %.0f MiB |\n| bmsctl tape write | %.2f s (%.0f MiB/s) |\n| tar -cf | %.2f s (%.0f MiB/s) |\n| tape / tar throughput | %.0f %% |\n",
    mib, tape, mib / tape, tar, mib / tar, 100 * tar / tape }'
rm -rf "$lib" "$BENCH_DIR/tar.out"
fi
[ "$TAPE_DAEMON" = 1 ] || exit 0

# Through bmsd: the snapshot in a disk repository, copied to a tape target.
[ -x "$BMSD" ] || { echo "no bmsd at $BMSD: cargo build --release -p bmsd, or set BMSD" >&2; exit 2; }
d=$BENCH_DIR/daemon
rm -rf "$d"
mkdir -p "$d/state" "$d/run"
printf 'version = 1\nmedia_wait_secs = 5\n' > "$d/bmsd.toml"
"$BMSD" --config "$d/bmsd.toml" --state-dir "$d/state" --socket "$d/run/bmsd.sock" --no-dbus \
    --metrics-listen 127.0.0.1:0 --log-target stderr --log-level warn 2>>"$d/bmsd.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
ctl() { "$BMSCTL" --socket "$d/run/bmsd.sock" "$@"; }
i=0
until ctl status >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "bmsd did not come up: $(tail -n 5 "$d/bmsd.log")" >&2; exit 1; }
  sleep 0.1
done
"$BMSCTL" tape create-library "$lib" --slots 2 >/dev/null
"$BMSCTL" tape add-cartridge "$lib" BENCH1 --slot 1 --capacity "$cap" >/dev/null
ctl pool add bench --media-type lto8 --retention-days 30 >/dev/null
ctl media add BENCH1 --media-type lto8 >/dev/null
ctl target add lto --kind tape --path "$lib" --pool bench >/dev/null
# The backup first, into the disk repository only; the copy then runs after an unchanged backup
# with the cache dropped, so it reads the packs from disk.
ctl job add bench --source "$tree" --schedule daily --target local >/dev/null
ctl job run bench --wait >/dev/null 2>&1
ctl job edit bench --target local --target lto >/dev/null
# copy_secs: the duration of the newest copy run to lto, in seconds.
copy_secs() {
  ctl --json run list --job bench | python3 -c '
import json, sys
runs = [r for r in json.load(sys.stdin)["runs"] if r["kind"] == "copy" and r["target"] == "lto"]
run = max(runs, key=lambda r: r["id"])
assert run["state"] == "succeeded", run
print(run["duration_secs"])'
}
drop
ctl job run bench --wait >/dev/null 2>&1
c1=$(copy_secs)
# A second archive on the cartridge (tape files 3 and 4), then the restore of one path of it.
ctl job run bench --wait >/dev/null 2>&1
c2=$(copy_secs)
snap=$(ctl --json snapshot list --job bench --target lto | python3 -c '
import json, sys
print(max(json.load(sys.stdin)["snapshots"], key=lambda s: s["time"])["id"])')
one=${TAPE_PATH:-$(cd "$tree" && find . -type f | head -n 1 | sed 's|^\./||')}
rm -rf "$BENCH_DIR/one"
r0=$(awk '/^rchar/ { print $2 }' /proc/$pid/io)
ctl restore "$snap" --target lto --to "$BENCH_DIR/one" --path "$tree/$one" >/dev/null
r1=$(awk '/^rchar/ { print $2 }' /proc/$pid/io)
cart=$(ls -d "$lib"/*/BENCH1)
f1=$(stat -c %s "$cart/file-000001"); f3=$(stat -c %s "$cart/file-000003")
echo "$c1 $c2 $bytes $t2 $t3 $r0 $r1 $f1 $f3" | awk '{ tar = $5 - $4; mib = $3 / 1048576;
  printf "| bmsd copy to tape (cold cache) | %.2f s (%.0f MiB/s) |\n| bmsd copy to tape (second) | %.2f s (%.0f MiB/s) |\n",
    $1, mib / $1, $2, mib / $2;
  if (tar > 0) printf "| copy (cold) / tar throughput | %.0f %% |\n", 100 * tar / $1;
  printf "| restore of one path: bytes bmsd read | %d (tape file 1: %d, tape file 3: %d) |\n", $7 - $6, $8, $9 }'
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$lib" "$d" "$BENCH_DIR/one"
