#!/usr/bin/env bash
# Daemon scale benchmark (docs/performance.md, "Daemon at scale"): a catalog with JOBS jobs
# (`bmsctl apply`) and RUNS finished runs (written into the stopped bmsd's catalog with Python's
# sqlite3), then the latency of `GET /metrics` (N scrapes, p50/p99, unchanged catalog and after a
# change) and of D-Bus `ListJobs` on a private bus (busctl; the cost of a trivial bus call is
# subtracted). Figures only, no pass/fail.
#
#   bench/daemon-scale.sh          as root; BMSD/BMSCTL default to target/release/{bmsd,bmsctl}
#   JOBS=1000 RUNS=100000 SCRAPES=200 CALLS=50 bench/daemon-scale.sh
# With target/release/examples/dbus_list_jobs built it also times ListJobs over one connection.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
BMSD=${BMSD:-$top/target/release/bmsd}
BMSCTL=${BMSCTL:-$top/target/release/bmsctl}
JOBS=${JOBS:-1000}
RUNS=${RUNS:-100000}
SCRAPES=${SCRAPES:-200}
CALLS=${CALLS:-50}
PY=/usr/bin/python3
for tool in "$BMSD" "$BMSCTL"; do
    [ -x "$tool" ] || { echo "missing $tool: cargo build --release -p bmsd -p bmsctl (or set BMSD/BMSCTL)" >&2; exit 1; }
done
for cmd in $PY dbus-daemon busctl curl; do
    command -v "$cmd" >/dev/null || { echo "missing $cmd (apt-get install python3 dbus systemd curl)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/bms-scale.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/src" "$work/run" "$work/state"
echo data > "$work/src/f"

# A private system-type bus that lets anyone own and call (the policy is not what is measured).
cat > "$work/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$work/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/> <allow own="*"/> <allow send_destination="*"/>
    <allow send_type="method_call"/> <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="method_return"/>
    <allow receive_type="error"/> <allow receive_type="signal"/>
  </policy>
</busconfig>
EOF
dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/bus" ] && break; sleep 0.05; done
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/bus"

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_bmsd() {
    "$BMSD" --state-dir "$work/state" --socket "$work/run/bmsd.sock" \
        --metrics-listen "127.0.0.1:$port" --log-target stderr --log-level warn 2>>"$work/bmsd.log" &
    bmsd_pid=$!
    pids+=("$bmsd_pid")
    for _ in $(seq 300); do
        "$BMSCTL" --socket "$work/run/bmsd.sock" status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bmsd did not come up: $(tail -n 5 "$work/bmsd.log")" >&2
    exit 1
}
ctl() { "$BMSCTL" --socket "$work/run/bmsd.sock" "$@"; }

echo "filling: $JOBS jobs (bmsctl apply), $RUNS runs (sqlite3)" >&2
start_bmsd
$PY - "$work" "$JOBS" > "$work/jobs.toml" <<'EOF'
import sys
work, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    print(f'[[jobs]]\nname = "job{i:05d}"\nsources = ["{work}/src"]\ntargets = ["local"]\nschedule = "*-*-* {i % 24:02d}:{i % 60:02d}:00"\n')
EOF
ctl apply "$work/jobs.toml" >/dev/null
kill "$bmsd_pid"; wait "$bmsd_pid" 2>/dev/null || true
$PY - "$work/state/catalog.db" "$JOBS" "$RUNS" <<'EOF'
import sqlite3, sys, datetime
db, jobs, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
rows = []
for i in range(runs):
    t = (t0 + datetime.timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    state = "failed" if i % 17 == 0 else "succeeded"
    rows.append((f"job{i % jobs:05d}", "backup", "schedule", state, "local", t, t, t, 1.5, 4096))
c.executemany("INSERT INTO runs(job, kind, trigger, state, target, queued_at, started_at, finished_at, duration_secs, bytes_total) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
c.commit()
EOF
start_bmsd

scrape() {
    local out=$1 i
    for i in $(seq "$SCRAPES"); do
        curl -s -o /dev/null -w '%{time_total}\n' -H 'Accept: application/openmetrics-text' \
            "http://127.0.0.1:$port/metrics"
        if [ "$out" = changed ]; then ctl job disable job00000 >/dev/null; ctl job enable job00000 >/dev/null; fi
    done
}
stats() {
    $PY -c '
import sys
v = sorted(float(x) * 1000 for x in sys.stdin if x.strip())
q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
print(f"n={len(v)} p50={q(0.5):.1f} ms p99={q(0.99):.1f} ms max={v[-1]:.1f} ms")'
}
bytes=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
echo "metrics text: $bytes bytes"
# bmsd's CPU time (user + system, from /proc) in clock ticks: per scrape it says what a scrape
# costs bmsd whatever else the machine is doing.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$bmsd_pid/stat"; }
per_scrape_ms() {
    $PY -c "import os,sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) * 1000 / os.sysconf(\"SC_CLK_TCK\") / int(sys.argv[3]):.1f}')" "$@"
}
c0=$(cpu_ticks)
same=$(scrape same | stats)
c1=$(cpu_ticks)
echo "GET /metrics, catalog unchanged between scrapes: $same; bmsd CPU $(per_scrape_ms "$c0" "$c1" "$SCRAPES") ms per scrape"
echo "GET /metrics, a job edited before each scrape:   $(scrape changed | stats)"

# The median wall time of CALLS runs of a command, in ms.
median_ms() {
    $PY - "$CALLS" "$@" <<'EOF'
import subprocess, sys, time
n, cmd = int(sys.argv[1]), sys.argv[2:]
v = []
for _ in range(n):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    v.append((time.perf_counter() - t) * 1000)
v.sort()
print(f"{v[len(v) // 2]:.1f}")
EOF
}
base=$(median_ms busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId)
list=$(median_ms busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" call org.bms.Manager1 /org/bms/Manager1 org.bms.Manager1 ListJobs s '{}')
echo "D-Bus ListJobs ($JOBS jobs): median $list ms per busctl call, $base ms for a trivial bus call: ~$($PY -c "print(f'{$list - $base:.1f}')") ms in bmsd"
# The same call as a desktop client makes it: one connection, CALLS calls (no process start, no
# printing of the reply). Built by `cargo build --release -p bmsd --example dbus_list_jobs`.
CLIENT=${CLIENT:-$top/target/release/examples/dbus_list_jobs}
if [ -x "$CLIENT" ]; then
    echo "D-Bus ListJobs ($JOBS jobs), one connection: $("$CLIENT" "$CALLS")"
else
    echo "(no $CLIENT: cargo build --release -p bmsd --example dbus_list_jobs for the one-connection figure)"
fi
