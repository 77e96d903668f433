#!/usr/bin/env bash
# Boot test (docs/packaging.md): install the .deb into Debian 12 booted with systemd as PID 1
# (systemd-nspawn) and check the packaged service. Each check prints what it checks.
#   tests/boot/run.sh [BMS_DEB]      as root; without BMS_DEB the debug package is built
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
start_time=$(date +%s)

deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(packaging/build-packages.sh --profile debug --no-build --no-rpm --out "$top/target/packages" | grep '\.deb$')
fi
tarball=$(tests/boot/rootfs.sh)

work=$(mktemp -d /var/tmp/bms-boot.XXXXXX)
nspawn_pid=
mounted=no
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    # The immutable target's files (check 4) cannot be removed while they are sealed.
    [ -d "$work/root/srv/imm" ] && chattr -R -i "$work/root/srv/imm" 2>/dev/null
    rm -rf "$work"
    if [ "$mounted" = yes ]; then umount /run/systemd/nspawn 2>/dev/null || true; fi
}
trap cleanup EXIT

root=$work/root
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
cp "$deb" "$root/root/bms.deb"
echo bmsboot > "$root/etc/hostname"
# nspawn keeps its per-container state here; a tmpfs of our own (docs/packaging.md).
mkdir -p /run/systemd/nspawn
if ! mountpoint -q /run/systemd/nspawn; then
    mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
    mounted=yes
fi

systemd-nspawn -q -D "$root" -b --keep-unit --register=no -M bmsboot --console=passive \
    >"$work/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is nspawn's child.
ct=
for _ in $(seq 300); do
    ct=$(cat "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null | awk '{print $1}')
    [ -n "$ct" ] && [ "$(cat "/proc/$ct/comm" 2>/dev/null)" = systemd ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/console.log"; echo "FAIL: systemd-nspawn exited"; exit 1; }
    sleep 0.1
done
in_ct() { nsenter -t "$ct" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

pass=0
check() { echo "CHECK: $*"; }
ok() { pass=$((pass + 1)); echo "  ok"; }
fail() {
    echo "  FAIL: $*"
    echo "--- journalctl -u bmsd (last 40 lines)"
    in_ct journalctl -u bmsd --no-pager -n 40 || true
    exit 1
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND (in the container) until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local end=$(($(date +%s) + secs))
    until in_ct sh -c "$*" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

check "systemd runs as PID 1 in the container and reaches its default target"
end=$(($(date +%s) + 90))
while :; do
    state=$(in_ct systemctl is-system-running --wait 2>&1 || true)
    case "$state" in running|degraded) break ;; esac
    [ "$(date +%s)" -lt "$end" ] || { cat "$work/console.log"; fail "system state: $state"; }
    sleep 0.5
done
ok
echo "  system state: $state (booted in $(($(date +%s) - start_time))s since the test began)"

# --- 1. install, active, STATUS=, journal fields
check "1. dpkg -i installs the package and bmsd is active"
in_ct dpkg -i /root/bms.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
wait_for 30 "bmsd active" systemctl is-active -q bmsd.service
in_ct systemctl is-active -q bmsd.socket || fail "bmsd.socket is not active"
in_ct systemctl is-enabled -q bmsd.service || fail "bmsd.service is not enabled"
ok
check "1. systemctl status bmsd shows the STATUS= line"
in_ct systemctl status bmsd --no-pager | grep 'Status: "ready' >/dev/null || fail "no Status: line: $(in_ct systemctl status bmsd --no-pager)"
ok
check "1. journalctl -u bmsd holds the start-up log"
wait_for 10 "ready in the journal" "journalctl -u bmsd --no-pager | grep -q ready"
ok
check "1. a run's journal entries carry JOB= and RUN= (journalctl -o json)"
in_ct sh -c 'mkdir -p /root/src && echo secret > /root/src/secret && chmod 0600 /root/src/secret && chmod 0700 /root/src'
in_ct bmsctl job add boot --source /root/src --target local --schedule daily >/dev/null || fail "job add"
in_ct bmsctl job run boot --wait >/dev/null || fail "job run (reading a root-only file under the hardened unit)"
in_ct sh -c 'journalctl -u bmsd -o json --no-pager | grep "\"JOB\":\"boot\"" | grep -q "\"RUN\":"' \
    || fail "no journal entry with JOB=boot and RUN="
ok

# --- 2. who may use bmsctl; socket activation
check "2. bmsctl status as root, a bms-admin member, a bms member; refused for others"
in_ct sh -c 'useradd -M -G bms-admin bmsadm && useradd -M -G bms bmsrd && useradd -M bmsnob' || fail "useradd"
in_ct bmsctl status >/dev/null || fail "root"
in_ct setpriv --reuid=bmsadm --regid=bmsadm --init-groups bmsctl status >/dev/null || fail "bms-admin member"
in_ct setpriv --reuid=bmsrd --regid=bmsrd --init-groups bmsctl status >/dev/null || fail "bms member"
set +e
in_ct setpriv --reuid=bmsrd --regid=bmsrd --init-groups bmsctl job add x --source /root --target local --schedule daily >/dev/null 2>&1
rc_rd=$?
in_ct setpriv --reuid=bmsnob --regid=bmsnob --init-groups bmsctl status >/dev/null 2>"$work/nob.err"
rc_nob=$?
set -e
[ "$rc_rd" = 4 ] || fail "a bms member could change things (exit $rc_rd, want 4)"
[ "$rc_nob" != 0 ] || fail "an unprivileged user got the status"
echo "  bms member changing: exit $rc_rd; unprivileged: exit $rc_nob ($(head -c 200 "$work/nob.err"))"
ok
check "2. with bmsd stopped and bmsd.socket active, the first bmsctl status starts bmsd"
in_ct systemctl stop bmsd.service
in_ct systemctl is-active -q bmsd.service && fail "bmsd still active after stop"
in_ct systemctl is-active -q bmsd.socket || fail "bmsd.socket not active"
in_ct bmsctl status >/dev/null || fail "bmsctl status through the socket"
in_ct systemctl is-active -q bmsd.service || fail "bmsd not started by the socket"
ok

# --- 3. reload
gen() { in_ct bmsctl --json status | sed -n 's/.*"generation": *\([0-9]*\).*/\1/p' | head -n1; }
check "3. systemctl reload bmsd applies a changed config"
g0=$(gen)
[ -n "$g0" ] || fail "no generation in bmsctl --json status: $(in_ct bmsctl --json status)"
in_ct sed -i 's/^max_concurrent_runs = .*/max_concurrent_runs = 3/' /etc/bms/bmsd.toml
in_ct systemctl reload bmsd
wait_for 10 "generation $((g0 + 1))" "bmsctl --json status | grep -q '\"generation\": *$((g0 + 1))'"
ok
check "3. a broken config is rejected and the service stays up"
in_ct sh -c 'echo "max_concurrent_runs = \"many\"" >> /etc/bms/bmsd.toml'
in_ct systemctl reload bmsd
wait_for 10 "the rejection in the journal" "journalctl -u bmsd --no-pager | grep -q 'new configuration rejected'"
in_ct systemctl is-active -q bmsd || fail "bmsd stopped after a broken config"
[ "$(gen)" = "$((g0 + 1))" ] || fail "generation changed on a broken config"
in_ct sed -i '$d' /etc/bms/bmsd.toml
ok

# --- 4. backup and restores under the hardened unit
snap=$(in_ct bmsctl --json snapshot list | grep -o '"id": *"[0-9a-f]*"' | head -n1 | grep -o '[0-9a-f]\{8,\}')
check "4. a restore into an allowed path (/srv) works"
[ -n "$snap" ] || fail "no snapshot: $(in_ct bmsctl --json snapshot list)"
in_ct mkdir -p /srv
in_ct bmsctl restore "$snap" --to /srv/restore >/dev/null || fail "restore into /srv/restore"
in_ct sh -c 'test "$(cat /srv/restore/root/src/secret)" = secret' || fail "restored file differs"
ok
check "4. a restore outside ReadWritePaths fails and says how to allow it"
set +e
msg=$(in_ct bmsctl restore "$snap" --to /opt/restore 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "restore into /opt/restore succeeded under ProtectSystem=strict"
echo "  bmsctl: $msg" | head -n 3
echo "$msg" | grep -q 'ReadWritePaths' || fail "the message does not say how to allow the path"
ok

check "4. a job writes an immutable target under the hardened unit, and its files cannot be removed"
in_ct mkdir -p /srv/imm
in_ct bmsctl target add imm --path /srv/imm --immutable-days 1 >/dev/null || fail "target add imm --immutable-days 1"
in_ct bmsctl job add sealed --source /root/src --target imm --schedule daily >/dev/null || fail "job add sealed"
in_ct bmsctl job run sealed --wait >/dev/null || fail "job run sealed (writing an immutable target)"
packs=$(find "$root/srv/imm" -type f -path '*/packs/*' | head -n 5)
[ -n "$packs" ] || fail "no pack files in /srv/imm: $(find "$root/srv/imm" | head)"
for f in $packs; do
    lsattr -d "$f" | awk '{print $1}' | grep -q i || fail "$f is not immutable: $(lsattr -d "$f")"
done
one=${packs%%$'\n'*}
set +e
rmmsg=$(in_ct rm -f "${one#"$root"}" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "root in the container removed a sealed pack"
echo "  rm of a sealed pack as root: $rmmsg"
# grep without -q reads all of the output: with pipefail, -q could stop early and leave the
# writer with SIGPIPE, failing the pipeline although the line was there.
in_ct bmsctl target show imm | grep immutab >/dev/null || fail "target show imm does not mention immutability"
ok

# --- 5. watchdog, clean stop
check "5. the watchdog restarts a bmsd that stops answering (SIGSTOP)"
in_ct mkdir -p /etc/systemd/system/bmsd.service.d
in_ct sh -c 'printf "[Service]\nWatchdogSec=3s\n" > /etc/systemd/system/bmsd.service.d/watchdog.conf'
in_ct systemctl daemon-reload
in_ct systemctl restart bmsd
pid=$(in_ct systemctl show -P MainPID bmsd)
in_ct sh -c "kill -STOP $pid"
wait_for 30 "a new bmsd" "p=\$(systemctl show -P MainPID bmsd); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && systemctl is-active -q bmsd"
in_ct sh -c 'journalctl -u bmsd --no-pager | grep -qi watchdog' || fail "no watchdog line in the journal"
in_ct rm /etc/systemd/system/bmsd.service.d/watchdog.conf
in_ct systemctl daemon-reload
ok
check "5. systemctl stop during a run is clean and leaves no run running"
in_ct sh -c 'mkdir -p /root/big && for i in $(seq 64); do head -c 4M /dev/urandom > /root/big/f$i; done'
in_ct bmsctl job add big --source /root/big --target local --schedule daily >/dev/null
in_ct systemctl restart bmsd
in_ct bmsctl job run big >/dev/null
wait_for 30 "the run to start" "bmsctl --json run list --job big | grep -q '\"state\": *\"\(running\|succeeded\)\"'"
in_ct systemctl stop bmsd
result=$(in_ct systemctl show -P Result bmsd)
[ "$result" = success ] || fail "stop result: $result"
in_ct systemctl start bmsd
in_ct bmsctl --json run list | grep '"state": *"\(running\|queued\)"' >/dev/null && fail "a run is left running: $(in_ct bmsctl run list)"
last=$(in_ct bmsctl --json run list --job big | grep -o '"state": *"[a-z]*"' | head -n1)
echo "  the run stopped by systemctl stop: $last"
echo "$last" | grep -q '"\(interrupted\|succeeded\)"' || fail "the stopped run is $last"
ok

# --- 6. remove, reinstall, purge; units
check "6. dpkg -r stops the service and keeps /var/lib/bms"
in_ct dpkg -r bms >/dev/null
in_ct systemctl is-active -q bmsd && fail "bmsd active after dpkg -r"
in_ct test -f /var/lib/bms/catalog.db || fail "/var/lib/bms/catalog.db removed by dpkg -r"
ok
check "6. reinstall works and keeps the catalog"
in_ct dpkg -i /root/bms.deb >/dev/null
wait_for 30 "bmsd active" systemctl is-active -q bmsd
in_ct bmsctl job show boot >/dev/null || fail "job boot lost across remove and reinstall"
ok
check "6. dpkg -P removes /var/lib/bms; a new install starts afresh"
in_ct dpkg -P bms >/dev/null
in_ct test -e /var/lib/bms && fail "/var/lib/bms left after purge"
in_ct dpkg -i /root/bms.deb >/dev/null
wait_for 30 "bmsd active" systemctl is-active -q bmsd
in_ct bmsctl job show boot >/dev/null 2>&1 && fail "the purged catalog came back"
ok
check "6. systemd-analyze verify prints nothing on stderr for every unit"
# The minimal rootfs has no man(1): check the pages the units cite are installed instead.
for page in man8/bmsd.8 man1/bmsctl.1 man5/bmsd.toml.5; do
    in_ct test -s "/usr/share/man/$page.gz" || fail "/usr/share/man/$page.gz is not installed"
done
err=$(in_ct systemd-analyze verify --man=no bmsd.service bmsd.socket 2>&1 >/dev/null) || fail "systemd-analyze verify failed: $err"
[ -z "$err" ] || fail "$err"
ok
check "6. systemd-analyze security --offline=yes bmsd.service is within the documented threshold"
threshold=$(sed -n 's/.*exposure threshold is `\([0-9.]*\)`.*/\1/p' docs/operations.md | head -n1)
score=$(in_ct systemd-analyze security --offline=yes /lib/systemd/system/bmsd.service 2>/dev/null | sed -n 's/.*Overall exposure level for bmsd.service: \([0-9.]*\).*/\1/p')
echo "  score $score, threshold $threshold"
awk -v s="$score" -v t="$threshold" 'BEGIN{exit !(s != "" && s <= t)}' || fail "score $score above $threshold"
ok

echo "boot test: $pass checks passed in $(($(date +%s) - start_time))s"
