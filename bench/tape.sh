#!/bin/sh
# bench/tape.sh — the tape writer against `tar -cf` on the same disk (docs/performance.md, "Tape").
#
# Writes one tree as a tape archive onto a virtual tape (`bmsctl tape write`, the writer tape
# copies use) and as `tar -cf` into a file of the same directory, with the page cache dropped
# before each when run as root, and prints both wall times and the ratio.
#
#   bench/tape.sh [TREE]    default: the Linux tree of linux-source-6.1 when unpacked under
#                           $BENCH_DIR/linux, else a generated tree of $TAPE_GEN_MIB MiB
# Variables: BMSCTL (default <repo>/target/release/bmsctl), BENCH_DIR (/var/tmp/bms-bench-tape),
# TAPE_GEN_MIB (1024).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
BMSCTL=${BMSCTL:-$here/target/release/bmsctl}
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
"$BMSCTL" tape create-library "$lib" --slots 2 >/dev/null
cap=$((bytes * 2 + (1 << 30)))
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
