#!/usr/bin/env bash
# Report and compliance at scale (docs/performance.md, "Reports and compliance at scale"):
#  1. a catalog with JOBS jobs (default 1,000) and RUNS finished backup runs (default 100,000)
#     queued in the last 30 days (a tenth failed), written into the stopped bmsd's catalog with
#     Python's sqlite3; then the wall time of `bmsctl report --period month` in each format;
#  2. a catalog with CJOBS jobs (default 10,000) on 3 targets each (onsite disk, offsite NAS,
#     offsite disk with immutability), two snapshots per job and target, seals on the immutable
#     one and a verification per job and target; then the wall time of `bmsctl compliance --json`.
# Each time is the median of ROUNDS calls (default 5), through the real bmsd and bmsctl. Figures
# only, no pass/fail; the targets are < 5 s per report and < 2 s for compliance (issue 12).
#
#   bench/report-scale.sh          BMSD/BMSCTL default to target/release/{bmsd,bmsctl}
#   JOBS=1000 RUNS=100000 CJOBS=10000 ROUNDS=5 bench/report-scale.sh
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
BMSD=${BMSD:-$top/target/release/bmsd}
BMSCTL=${BMSCTL:-$top/target/release/bmsctl}
JOBS=${JOBS:-1000}
RUNS=${RUNS:-100000}
CJOBS=${CJOBS:-10000}
ROUNDS=${ROUNDS:-5}
PY=/usr/bin/python3
for tool in "$BMSD" "$BMSCTL"; do
    [ -x "$tool" ] || { echo "missing $tool: cargo build --release -p bmsd -p bmsctl (or set BMSD/BMSCTL)" >&2; exit 1; }
done
command -v $PY >/dev/null || { echo "missing $PY (apt-get install python3)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/bms-report-scale.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_bmsd NAME: bmsd on $work/NAME/{state,run}, no D-Bus, metrics on a free port.
start_bmsd() {
    local d=$work/$1 port
    mkdir -p "$d/state" "$d/run"
    port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$BMSD" --state-dir "$d/state" --socket "$d/run/bmsd.sock" --no-dbus \
        --metrics-listen "127.0.0.1:$port" --log-target stderr --log-level warn 2>>"$d/bmsd.log" &
    bmsd_pid=$!
    pids+=("$bmsd_pid")
    sock=$d/run/bmsd.sock
    for _ in $(seq 300); do
        "$BMSCTL" --socket "$sock" status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bmsd did not come up: $(tail -n 5 "$d/bmsd.log")" >&2
    exit 1
}
stop_bmsd() { kill "$bmsd_pid"; wait "$bmsd_pid" 2>/dev/null || true; }
ctl() { "$BMSCTL" --socket "$sock" "$@"; }

# The median wall time of ROUNDS runs of a command, in seconds (its exit status is ignored:
# `bmsctl compliance` exits 1 when a job is not compliant).
median_s() {
    $PY - "$ROUNDS" "$@" <<'EOF'
import subprocess, sys, time
n, cmd = int(sys.argv[1]), sys.argv[2:]
v = []
for _ in range(n):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    v.append(time.perf_counter() - t)
v.sort()
print(f"{v[len(v) // 2]:.2f} s (min {v[0]:.2f}, max {v[-1]:.2f})")
EOF
}

echo "== report: $JOBS jobs, $RUNS runs in the last 30 days" >&2
start_bmsd report
stop_bmsd
$PY - "$work/report/state/catalog.db" "$JOBS" "$RUNS" <<'EOF'
import sqlite3, sys, datetime, json
db, jobs, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
now = datetime.datetime.now(datetime.timezone.utc)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
for i in range(jobs):
    name = f"job{i:05d}"
    spec = {"name": name, "sources": ["/srv/data"], "schedule": "hourly", "targets": ["local"]}
    c.execute("INSERT INTO jobs(name, enabled, schedule, spec, created_at, updated_at) VALUES (?, 1, 'hourly', ?, ?, ?)",
              (name, json.dumps(spec), fmt(now), fmt(now)))
step = 30 * 86400 / runs
rows = []
for i in range(runs):
    t = fmt(now - datetime.timedelta(seconds=30 * 86400 - 60 - i * step))
    failed = i % 10 == 0
    rows.append((f"job{i % jobs:05d}", "backup", "schedule", "failed" if failed else "succeeded",
                 "local", t, t, t, 1.5, 0 if failed else 1 << 20, 0 if failed else 4096,
                 "source not readable" if failed else None))
c.executemany("INSERT INTO runs(job, kind, trigger, state, target, queued_at, started_at, finished_at, duration_secs, bytes_read, bytes_added, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
c.commit()
EOF
start_bmsd report
for f in text json csv html; do
    out=$work/report.$f
    t=$(median_s "$BMSCTL" --socket "$sock" report --period month --format "$f" --output "$out" --force)
    echo "bmsctl report --period month --format $f ($JOBS jobs, $RUNS runs): median $t, $(wc -c <"$out") bytes"
done
stop_bmsd

echo "== compliance: $CJOBS jobs on 3 targets" >&2
start_bmsd compliance
for t in nas vault; do mkdir -p "$work/$t"; done
ctl target add nas --kind nas --path "$work/nas" --location offsite >/dev/null
ctl target add vault --path "$work/vault" --location offsite >/dev/null
stop_bmsd
$PY - "$work/compliance/state/catalog.db" "$CJOBS" <<'EOF'
import sqlite3, sys, datetime, json
db, jobs = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = datetime.datetime.now(datetime.timezone.utc)
at = lambda secs_ago: (now - datetime.timedelta(seconds=secs_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
schedules = ["daily", "*-*-* 02:00", "Mon..Fri 02:00", "hourly", "weekly"]
rid = 0
for i in range(jobs):
    name = f"job{i:05d}"
    s = schedules[i % len(schedules)]
    spec = {"name": name, "sources": ["/srv/data"], "schedule": s, "targets": ["local", "nas", "vault"]}
    c.execute("INSERT INTO jobs(name, enabled, schedule, spec, created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?)",
              (name, s, json.dumps(spec), at(0), at(0)))
    for t in ["local", "nas", "vault"]:
        for age in [3600 * 30, 3600]:
            rid += 1
            snap = f"{rid:064x}"
            c.execute("INSERT INTO snapshots(id, target, job, time, host, paths, partial, run_id, stats) VALUES (?, ?, ?, ?, 'h', '[]', 0, ?, '{}')",
                      (snap, t, name, at(age), rid))
            if t == "vault":
                c.execute("INSERT INTO seals(target, snapshot, until, sealed_at, objects) VALUES (?, ?, ?, ?, 3)",
                          (t, snap, at(-86400 * 30), at(age)))
        c.execute("INSERT INTO runs(job, kind, trigger, state, target, queued_at, finished_at, read_data_percent, verify_errors) VALUES (?, 'verify', 'schedule', 'succeeded', ?, ?, ?, 10, 0)",
                  (name, t, at(7200), at(7200)))
c.commit()
EOF
start_bmsd compliance
t=$(median_s "$BMSCTL" --socket "$sock" --json compliance)
echo "bmsctl compliance --json ($CJOBS jobs x 3 targets): median $t, $(ctl --json compliance 2>/dev/null | wc -c) bytes"
stop_bmsd
