#!/usr/bin/env bash
# Usage: deploy/base/make-debian.sh ROOTFS
# Makes ROOTFS (a new folder) a Debian bookworm tree for `docker import`, as the official debian:bookworm-slim
# is made (debuerreotype): debootstrap's minbase from the apt mirror, security and point-release updates
# applied, then "slim": no manuals, docs (copyright notices kept), translations or info pages, now and for
# every later apt install (dpkg path-exclude), no apt caches or package lists. bin/test-image runs it when
# Docker Hub cannot be reached.
set -euo pipefail
root=${1:?usage: make-debian.sh ROOTFS}
mirror=http://deb.debian.org/debian
[ ! -e "$root" ] || { echo "make-debian.sh: $root exists already" >&2; exit 2; }
debootstrap --variant=minbase bookworm "$root" "$mirror"
# Everything below removes files under $root: it must be the tree just made, never the host's root.
[ -f "$root/etc/debian_version" ] && [ "$(realpath "$root")" != / ] \
  || { echo "make-debian.sh: $root is not a Debian root file system" >&2; exit 2; }

cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
# Left out of every package installed in this image (as in the official debian:*-slim images).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG

cat >"$root/etc/apt/apt.conf.d/slim" <<'CFG'
// No package cache and no downloaded .deb left behind by apt in an image layer (as the official images).
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
CFG

cat >"$root/etc/apt/sources.list" <<LIST
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror}-security bookworm-security main
LIST

# Updates now, in the base: an image built on it then never carries a second copy of an upgraded package.
chroot "$root" apt-get update -qq
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get upgrade -y -qq
chroot "$root" apt-get clean

# What debootstrap installed before the path-excludes existed: the same cut, after the fact.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
for folder in man groff info lintian linda; do rm -rf "${root:?}/usr/share/$folder"/*; done
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "${root:?}"/var/cache/apt/*.bin "${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/var/lib/apt/lists/*
find "$root/var/log" -type f -delete
rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
# The host's name server and name are debootstrap's copies; Docker provides both to each container.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
