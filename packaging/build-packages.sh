#!/usr/bin/env bash
# Builds the bms .deb and .rpm from the workspace's binaries (docs/packaging.md).
#   packaging/build-packages.sh [--profile release|debug] [--out DIR] [--no-build] [--no-rpm]
# release (the default) runs `cargo build --release` first; debug packages the binaries of
# `cargo build` (what CI's boot test installs). Needs dpkg-deb, and rpmbuild for the .rpm.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

profile=release out=$top/target/packages build=yes rpm=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        --no-rpm) rpm=no; shift ;;
        *) echo "usage: $0 [--profile release|debug] [--out DIR] [--no-build] [--no-rpm]" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) bindir=$top/target/release; cargo_args=(--release) ;;
    debug) bindir=$top/target/debug; cargo_args=() ;;
    *) echo "--profile must be release or debug, not '$profile'" >&2; exit 2 ;;
esac
if [ "$build" = yes ]; then
    cargo build "${cargo_args[@]}" -p bmsd -p bmsctl
fi
for b in bmsd bmsctl; do
    [ -x "$bindir/$b" ] || { echo "$bindir/$b is missing: build it first (cargo build ${cargo_args[*]})" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
release=1
arch=$(dpkg --print-architecture)
glibc=$(objdump -T "$bindir/bmsd" "$bindir/bmsctl" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
# Reproducible file times: the last commit's, else now.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# stage ROOT UNITDIR: the files both packages hold, laid out under ROOT.
stage() {
    local root=$1 unitdir=$2
    install -d -m 0755 "$root/usr/bin" "$root$unitdir" "$root/usr/lib/sysusers.d" \
        "$root/usr/lib/tmpfiles.d" "$root/usr/share/dbus-1/system.d" "$root/etc/bms" \
        "$root/usr/share/man/man1" "$root/usr/share/man/man5" "$root/usr/share/man/man8" \
        "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
        "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/bms" \
        "$root/usr/share/bms/monitoring"
    for b in bmsd bmsctl; do
        install -m 0755 "$bindir/$b" "$root/usr/bin/$b"
        strip --strip-unneeded "$root/usr/bin/$b"
    done
    install -m 0644 packaging/systemd/bmsd.service packaging/systemd/bmsd.socket "$root$unitdir/"
    install -m 0644 packaging/systemd/bms.sysusers "$root/usr/lib/sysusers.d/bms.conf"
    install -m 0644 packaging/systemd/bms.tmpfiles "$root/usr/lib/tmpfiles.d/bms.conf"
    install -m 0644 packaging/systemd/org.bms.Manager1.conf "$root/usr/share/dbus-1/system.d/"
    install -m 0644 packaging/config/bmsd.toml "$root/etc/bms/bmsd.toml"
    "$root/usr/bin/bmsctl" manpages "$work/man"
    "$root/usr/bin/bmsd" --print-manpage > "$work/man/bmsd.8"
    cp packaging/man/bmsd.toml.5 "$work/man/"
    for page in "$work"/man/*; do
        section=${page##*.}
        gzip -9n -c "$page" > "$root/usr/share/man/man$section/$(basename "$page").gz"
        chmod 0644 "$root/usr/share/man/man$section/$(basename "$page").gz"
    done
    rm -rf "$work/man"
    "$root/usr/bin/bmsctl" completions bash > "$root/usr/share/bash-completion/completions/bmsctl"
    "$root/usr/bin/bmsctl" completions zsh > "$root/usr/share/zsh/vendor-completions/_bmsctl"
    "$root/usr/bin/bmsctl" completions fish > "$root/usr/share/fish/vendor_completions.d/bmsctl.fish"
    install -m 0644 README.md docs/*.md "$root/usr/share/doc/bms/"
    install -m 0644 packaging/monitoring/* "$root/usr/share/bms/monitoring/"
    find "$root" -type f -exec touch -d @"$SOURCE_DATE_EPOCH" {} +
}

# --- .deb
deb=$work/deb
stage "$deb" /lib/systemd/system
install -m 0644 packaging/deb/copyright "$deb/usr/share/doc/bms/copyright"
printf 'bms (%s-%s) unstable; urgency=medium\n\n  * Package built from the bms workspace.\n\n -- bms maintainers <maintainers@bms.example.org>  %s\n' \
    "$version" "$release" "$(date -R -d @"$SOURCE_DATE_EPOCH")" | gzip -9n > "$deb/usr/share/doc/bms/changelog.Debian.gz"
for f in "$deb"/usr/share/doc/bms/*.md; do gzip -9n "$f"; done
install -d -m 0755 "$deb/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$deb/DEBIAN/"
echo /etc/bms/bmsd.toml > "$deb/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$deb" | cut -f1)
cat > "$deb/DEBIAN/control" <<CONTROL
Package: bms
Version: $version-$release
Architecture: $arch
Maintainer: bms maintainers <maintainers@bms.example.org>
Installed-Size: $size
Depends: libc6 (>= $glibc), libgcc-s1, systemd
Section: admin
Priority: optional
Description: backup management system: daemon and command line
 bms backs up files to disk and NAS targets on systemd calendar
 schedules, keeps a catalog of runs and snapshots in SQLite, checks
 the 3-2-1-1-0 rule and restores. This package holds the daemon bmsd
 (a hardened systemd service with socket activation) and its command
 line client bmsctl, with man pages and shell completions.
CONTROL
(cd "$deb" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$deb/DEBIAN/md5sums" "$deb/DEBIAN/conffiles" "$deb/DEBIAN/control"
debfile=$out/bms_${version}-${release}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$deb" "$debfile" >/dev/null
echo "$debfile"

# --- .rpm
if [ "$rpm" = yes ]; then
    rpmroot=$work/rpmroot
    stage "$rpmroot" /usr/lib/systemd/system
    for f in "$rpmroot"/usr/share/doc/bms/*.md; do gzip -9n "$f"; done
    rpmarch=$(uname -m)
    rpmbuild -bb --quiet \
        --define "_topdir $work/rpmbuild" \
        --define "_rpmdir $out" \
        --define "_build_id_links none" \
        --define "__strip /bin/true" \
        --define "__os_install_post %{nil}" \
        --define "staged $rpmroot" \
        --define "bms_version $version" \
        --define "bms_release $release" \
        --define "glibc $glibc" \
        --target "$rpmarch" \
        packaging/rpm/bms.spec
    rpmfile=$out/$rpmarch/bms-${version}-${release}.${rpmarch}.rpm
    echo "$rpmfile"
fi
