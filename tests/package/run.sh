#!/usr/bin/env bash
# The Debian packages in clean Debian Bullseye roots (glibc 2.31, the oldest the boxes run:
# JetPack 5 is Ubuntu 20.04 with the same glibc, Raspberry Pi OS Bullseye too; SUITE and
# GLIBC_MAX pick another, as CI does with a package of its release build). For each
# architecture given (amd64 natively, arm64 under qemu-user through binfmt), it
#   - checks the binary needs no glibc symbol newer than 2.31,
#   - installs the .deb with dpkg in a fresh root (made once by debootstrap, kept as a tarball),
#   - checks the user, groups, folders, modes, unit and udev rule, and that `edge-ad status`
#     runs as the service's user and says the box is not calibrated yet,
#   - reinstalls it over a site's edited box.toml and calibration (an upgrade) and checks both
#     are untouched, removes it (site data kept) and purges it (site data, user gone),
# and prints `N passed, M failed`. Run as root (chroot). Usage:
#   tests/package/run.sh amd64=target/debs/edge-ad_0.1.0-1_amd64.deb arm64=target/debs/edge-ad_0.1.0-1_arm64.deb
# Needs: debootstrap, and for arm64 qemu-user-static with binfmt (apt-get install debootstrap
# qemu-user-static binfmt-support). Roots are cached in $EDGE_AD_CHROOTS (~/.cache/edge-ad/chroots).
set -uo pipefail
cache=${EDGE_AD_CHROOTS:-$HOME/.cache/edge-ad/chroots}
suite=${SUITE:-bullseye}
glibc_max=${GLIBC_MAX:-2.31} # the suite's glibc: the newest symbol version the binary may need
mirror=${MIRROR:-http://deb.debian.org/debian}
[ $# -gt 0 ] || { echo "usage: $0 ARCH=PACKAGE.deb ..." >&2; exit 2; }
command -v objdump >/dev/null || { echo "objdump (binutils) is needed" >&2; exit 2; }
mkdir -p "$cache"
log=$(mktemp)
root=
# On any exit: the proc mount and the root of the architecture in progress, the parts, the log.
drop_root() {
  if [ -n "$root" ]; then
    umount -l "$root/proc" 2>/dev/null
    rm -rf --one-file-system "$root"
    root=
  fi
}
cleanup() {
  drop_root
  rm -rf "$parts" "$log"
}
trap cleanup EXIT
# A few parts for the box to calibrate on and inspect, made by the host's build.
edge_ad=${EDGE_AD:-${CARGO_TARGET_DIR:-target}/release/edge-ad}
parts=$(mktemp -d)
"$edge_ad" demo --keep "$parts/set" --seed 3 --test-good 2 --per-defect 1 >/dev/null || {
  echo "cannot make parts with $edge_ad (set EDGE_AD to a built edge-ad)" >&2
  exit 1
}
texture=$(find "$parts/set" -mindepth 1 -maxdepth 1 -type d | sort | head -1)
passed=0
failed=0
check() { # check NAME COMMAND...: runs it, counts and prints the outcome
  local name=$1
  shift
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/     /' "$log" | tail -20
  fi
}

pristine_root() { # pristine_root ARCH: a tarball of a minimal Debian root with the package's dependencies
  local arch=$1 tar="$cache/$suite-$1.tar"
  if [ ! -f "$tar" ]; then
    local dir
    dir=$(mktemp -d)
    debootstrap --variant=minbase --arch="$arch" --include=adduser,init-system-helpers \
      "$suite" "$dir" "$mirror" >"$cache/$suite-$arch.log" 2>&1 || {
      tail "$cache/$suite-$arch.log" >&2
      rm -rf --one-file-system "$dir"
      return 1
    }
    tar -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
    rm -rf "$dir"
  fi
  echo "$tar"
}

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
as_service() { chroot --userspec=edge-ad:edge-ad "$root" /usr/bin/env -i PATH=/usr/bin:/bin "$@"; }

for spec in "$@"; do
  arch=${spec%%=*}
  deb=${spec#*=}
  echo "== $arch: $deb in a clean Debian $suite root"
  [ -f "$deb" ] || { echo "FAIL $arch: no such package $deb"; failed=$((failed + 1)); continue; }
  tar=$(pristine_root "$arch") || { echo "FAIL $arch: debootstrap"; failed=$((failed + 1)); continue; }
  root=$(mktemp -d)
  # The tarball's "." carries mktemp's 0700, which would keep the service's user out of its root.
  if ! tar -C "$root" -xf "$tar" || ! chmod 755 "$root" || ! mount -t proc proc "$root/proc"; then
    echo "FAIL $arch: cannot unpack $tar or mount /proc in it"
    failed=$((failed + 1))
    drop_root
    continue
  fi
  cp "$deb" "$root/tmp/edge-ad.deb"
  # The same package as a newer version whose box.toml changed too: the upgrade under test.
  dpkg-deb -R "$deb" "$root/tmp/next"
  sed -i 's/^Version: .*/&+next/' "$root/tmp/next/DEBIAN/control"
  echo "# a default changed in the next version" >>"$root/tmp/next/etc/edge-ad/box.toml"
  (cd "$root/tmp/next" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | xargs -0 md5sum >DEBIAN/md5sums)
  dpkg-deb -b "$root/tmp/next" "$root/tmp/edge-ad-next.deb" >/dev/null
  rm -rf "$root/tmp/next"

  newest_glibc() {
    local newest
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/edge-ad >"$root/tmp/edge-ad.bin" || return 1
    newest=$(objdump -T "$root/tmp/edge-ad.bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    echo "newest symbol version: $newest"
    [ -n "$newest" ] && [ "$(printf '%s\nGLIBC_%s\n' "$newest" "$glibc_max" | sort -V | tail -1)" = "GLIBC_$glibc_max" ]
  }
  check "$arch: the binary needs glibc $glibc_max at most" newest_glibc
  check "$arch: dpkg installs it" in_root dpkg -i /tmp/edge-ad.deb
  in_groups() {
    local groups
    groups=$(in_root id -nG edge-ad) || return 1
    echo "$groups"
    grep -qw video <<<"$groups" && grep -qw gpio <<<"$groups"
  }
  check "$arch: user edge-ad in groups video and gpio" in_groups
  owner_mode() { [ "$(in_root stat -c '%U:%G %a' "$1")" = "$2" ]; } # names from the root's own passwd
  check "$arch: /var/lib/edge-ad is edge-ad's, 0750" owner_mode /var/lib/edge-ad 'edge-ad:edge-ad 750'
  check "$arch: /etc/edge-ad/box.toml is root:edge-ad 0640" owner_mode /etc/edge-ad/box.toml 'root:edge-ad 640'

  check "$arch: the unit runs /usr/bin/edge-ad serve" grep -q '^ExecStart=/usr/bin/edge-ad serve' "$root/usr/lib/systemd/system/edge-ad.service"
  check "$arch: the udev rule for gpiochips" test -f "$root/lib/udev/rules.d/60-edge-ad-gpio.rules"
  check "$arch: edge-ad --version" in_root /usr/bin/edge-ad --version
  status_fresh() {
    local out
    out=$(as_service edge-ad status --config /etc/edge-ad/box.toml) || return 1
    echo "$out"
    grep -q 'not calibrated' <<<"$out" && grep -q 'no counters yet' <<<"$out"
  }
  check "$arch: edge-ad status runs as edge-ad and says it is not calibrated" status_fresh

  # The box starts: as the service's user, calibrate from a folder of 4 good shots, then serve a
  # replay folder (free-run, no PLC) to its end; status counts the parts.
  try=/var/lib/edge-ad/try
  mkdir -p "$root$try/shots" "$root$try/replay"
  cp "$texture"/train/good/00[0-3].png "$root$try/shots/"
  find "$texture/test" -name '*.png' | sort | head -4 | while read -r f; do cp "$f" "$root$try/replay/$(basename "$(dirname "$f")")-$(basename "$f")"; done
  cat >"$root$try/box.toml" <<TOML
[model]
calibration = "$try/site.calib"
[source]
kind = "folder"
path = "$try/replay"
[trigger]
kind = "free-run"
[counters]
path = "$try/counters.json"
[trust]
box_key = "$try/box.key"
TOML
  in_root chown -R edge-ad:edge-ad "$try"
  check "$arch: calibrate --config as edge-ad" as_service edge-ad calibrate --config "$try/box.toml" --source "$try/shots"
  serve_replay() {
    as_service timeout 300 edge-ad serve --config "$try/box.toml" >"$root/tmp/records.jsonl" || return 1
    [ "$(grep -c '"event":"verdict"' "$root/tmp/records.jsonl")" = 4 ]
  }
  check "$arch: serve inspects the 4 replayed parts" serve_replay
  counted() { # no pipe into grep -q: with pipefail, status ended by SIGPIPE would read as failed
    local out
    out=$(as_service edge-ad status --config "$try/box.toml") || return 1
    echo "$out"
    grep -q 'triggers 4' <<<"$out"
  }
  check "$arch: status counts them" counted
  rm -rf "${root:?}$try"

  # A site: an edited box.toml and a calibration. An upgrade to a version whose own box.toml
  # changed too keeps the site's (as apt does unattended: keep the old conffile) and the data.
  echo "# site edit" >>"$root/etc/edge-ad/box.toml"
  echo "site calibration" >"$root/var/lib/edge-ad/site.calib"
  site_sums() { md5sum "$root/etc/edge-ad/box.toml" "$root/var/lib/edge-ad/site.calib"; }
  before=$(site_sums)
  check "$arch: upgrading over a site" in_root dpkg -i --force-confdef --force-confold /tmp/edge-ad-next.deb
  # shellcheck disable=SC2016 # ${Version} is dpkg-query's, not the shell's
  upgraded() { in_root dpkg-query -W -f '${Version}' edge-ad | grep -q '+next$'; }
  check "$arch: the upgrade is installed" upgraded
  untouched() { [ "$(site_sums)" = "$before" ]; }
  check "$arch: the site's box.toml and calibration are untouched" untouched
  check "$arch: the new default is offered beside it" test -f "$root/etc/edge-ad/box.toml.dpkg-dist"
  check "$arch: dpkg -r removes it" in_root dpkg -r edge-ad
  removed() { [ ! -e "$root/usr/bin/edge-ad" ] && [ -f "$root/var/lib/edge-ad/site.calib" ] && [ -f "$root/etc/edge-ad/box.toml" ]; }
  check "$arch: remove keeps the site's data" removed
  check "$arch: dpkg -P purges it" in_root dpkg -P edge-ad
  purged() { [ ! -e "$root/var/lib/edge-ad" ] && [ ! -e "$root/etc/edge-ad" ] && ! in_root id edge-ad; }
  check "$arch: purge removes the site's data and the user" purged

  drop_root
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
