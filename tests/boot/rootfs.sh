#!/usr/bin/env bash
# Prints the path of a cached minimal Debian 12 rootfs tarball, making it with debootstrap
# when it is missing. The mirror is the machine's own (its apt sources), read at run time.
#   tests/boot/rootfs.sh [CACHE_DIR]      (default $BMS_BOOT_CACHE or /var/cache/bms-ci)
set -euo pipefail
cache=${1:-${BMS_BOOT_CACHE:-/var/cache/bms-ci}}
tarball=$cache/debian12-rootfs.tar
# Packages beyond minbase that the boot test uses: systemd as PID 1, users and groups, ACLs.
include=systemd,systemd-sysv,dbus,passwd,acl,e2fsprogs
stamp="$include"
if [ -s "$tarball" ] && [ "$(cat "$tarball.include" 2>/dev/null)" = "$stamp" ]; then
    echo "$tarball"
    exit 0
fi

mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        # deb822: the first URIs of a stanza whose Suites name bookworm (not -security).
        awk 'BEGIN{RS="";FS="\n"} /Suites:[^\n]*bookworm( |$|\n)/ && /Types:[^\n]*deb( |$|\n)/ {
                 for (i=1;i<=NF;i++) if ($i ~ /^URIs:/) { split($i,a," "); print a[2]; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk '$1=="deb" && $3=="bookworm" {u=$2; if (u ~ /^\[/) u=$3; print u; exit}' "$f"
    done
}
url=$(mirror | grep -v security | head -n1)
if [ -z "$url" ]; then
    echo "no Debian 12 (bookworm) mirror in /etc/apt/sources*: add one or set BMS_BOOT_CACHE to a cache holding $tarball" >&2
    exit 1
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "debootstrap bookworm from $url (cached in $tarball)" >&2
debootstrap --variant=minbase --include="$include" bookworm "$work/root" "$url" >"$work/log" 2>&1 || {
    tail -n 30 "$work/log" >&2
    exit 1
}
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$tarball"
echo "$stamp" > "$tarball.include"
echo "$tarball"
