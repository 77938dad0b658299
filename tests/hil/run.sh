#!/bin/bash
# Hardware-in-the-loop test: the project's own `edge-ad serve` inside a small qemu VM that boots
# Debian's kernel with the real vivid (V4L2 camera) and gpio-sim (GPIO) drivers; the checks
# (tests/hil/check.rs) look from the simulator's side as a PLC would. Prints `N passed, M failed`
# and exits non-zero when a check fails. Runs on a Debian 12 amd64 host as root.
#
# Steps (after shared/reference/hil-qemu.md, where this recipe was worked out):
#   1. Debian packages: qemu, busybox, v4l-utils, kmod, cpio, the kernel headers;
#   2. download (not install) the current Debian kernel image, extract it, and the ELF vmlinux;
#   3. build gpio-sim.ko out of tree (Debian ships CONFIG_GPIO_SIM unset), from linux-source;
#   4. build edge-ad and hil-check (release, the same build as the tests);
#   5. pack busybox + modules + v4l2-ctl + the two binaries (with their libraries) + init.sh;
#   6. boot under TCG (KVM when HIL_ACCEL=kvm works) and read the verdict from the console.
# What it downloads and builds is kept in $HIL_WORK (default ~/.cache/edge-ad/hil) and reused.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=${HIL_WORK:-$HOME/.cache/edge-ad/hil}
mkdir -p "$W"
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s)
lap() { echo "hil: $1 ($(($(date +%s) - T0)) s)"; }

if [ "$(id -u)" != 0 ]; then echo "hil: needs root (apt, kernel module build)"; echo "0 passed, 1 failed"; exit 1; fi

# 1. host packages (the kernel image itself is only downloaded)
apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -q >/dev/null
KPKG=${HIL_KPKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')}
KVER=${KPKG#linux-image-}
SER=$(echo "$KVER" | cut -d. -f1,2)
PKGS="qemu-system-x86 busybox-static v4l-utils kmod cpio xz-utils linux-headers-$KVER make gcc libclang-dev"
dpkg -s $PKGS >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends $PKGS >/dev/null
lap "packages, kernel $KVER"

# 2. kernel image + the matching source package
cd "$W"
if [ ! -f "k/boot/vmlinuz-$KVER" ]; then
  apt-get download -q "$KPKG" "linux-source-$SER" 2>&1 | grep -v unsandboxed || true
  dpkg-deb -x "${KPKG}"_*.deb k
  depmod -b k "$KVER"
fi
[ -s "vmlinux-$KVER" ] || "$HERE/extract-vmlinux.sh" "k/boot/vmlinuz-$KVER" "vmlinux-$KVER" >/dev/null
lap "kernel image"

# 3. gpio-sim.ko
if [ ! -f gpio-sim/gpio-sim.ko ]; then
  mkdir -p gpio-sim
  cp "$HERE"/gpio-sim-oot/{Kbuild,Makefile} gpio-sim/
  [ -f "linux-source-$SER.tar.xz" ] || dpkg-deb --fsys-tarfile linux-source-"${SER}"_*.deb \
    | tar -xO "./usr/src/linux-source-$SER.tar.xz" > "linux-source-$SER.tar.xz"
  "$HERE/gpio-sim-oot/fetch-sources.sh" "linux-source-$SER.tar.xz" gpio-sim
  make -s -C gpio-sim KVER="$KVER" 2>&1 | grep -v 'Skipping BTF' || true
fi
[ -f gpio-sim/gpio-sim.ko ] || { echo "hil: gpio-sim.ko did not build"; echo "0 passed, 1 failed"; exit 1; }
lap "gpio-sim.ko"

# 4. the binaries under test
(cd "$ROOT" && cargo build -q --release -p edge-ad --bin edge-ad -p edge-ad-e2e --bin hil-check)
BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
lap "edge-ad + hil-check built"

# 5. initramfs
R=$(mktemp -d /tmp/hil-initrd.XXXXXX)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules,lib64,lib/x86_64-linux-gnu,usr/bin}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
: > "$R/etc/modules.load"
add_mod() {  # name [params]: the module and its dependencies, in load order
  local name=$1; shift
  /sbin/modprobe -d k -S "$KVER" --show-depends "$name" | awk '$1=="insmod"{print $2}' | while read -r p; do
    b=$(basename "$p")
    grep -q "^$b" "$R/etc/modules.load" && continue
    cp "$p" "$R/lib/modules/$b"
    if [ "$(basename "$p" .ko)" = "$name" ]; then echo "$b $*" >> "$R/etc/modules.load"; else echo "$b" >> "$R/etc/modules.load"; fi
  done
}
add_mod vivid n_devs=1 node_types=0x1
add_mod configfs
add_mod vfb vfb_enable=1 mode_option=640x480-32   # a framebuffer for the overlay
cp gpio-sim/gpio-sim.ko "$R/lib/modules/gpio-sim.ko"; echo gpio-sim.ko >> "$R/etc/modules.load"
copy_bin() {  # a binary and the shared libraries it needs
  cp "$1" "$R/$2"
  ldd "$1" | awk '/=>/{print $3} /ld-linux/{print $1}' | while read -r l; do
    [ -f "$l" ] || continue
    case $l in /lib64/*) cp -L "$l" "$R/lib64/" ;; *) cp -L "$l" "$R/lib/x86_64-linux-gnu/" ;; esac
  done
}
copy_bin /usr/bin/v4l2-ctl usr/bin/
copy_bin "$BIN/edge-ad" bin/edge-ad
copy_bin "$BIN/hil-check" bin/hil-check
cp "$HERE/init.sh" "$R/init"; chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > initrd.gz
lap "initramfs ($(du -h initrd.gz | cut -f1))"

# 6. boot and test
ACCEL=(-accel tcg -cpu max)
if [ "${HIL_ACCEL:-tcg}" = kvm ] && [ -w /dev/kvm ]; then ACCEL=(-accel kvm -cpu host,-arch-capabilities); fi
FAST="lpj=4000000 no_timer_check tsc=reliable mitigations=off cryptomgr.notests random.trust_cpu=on"
LOG="$W/console.log"
rc=0
timeout "${HIL_TIMEOUT:-1200}" qemu-system-x86_64 "${ACCEL[@]}" -m 1024M -smp "${HIL_SMP:-2}" \
  -bios /usr/share/qemu/qboot.rom -nographic -no-reboot -nodefaults -serial stdio \
  -kernel "vmlinux-$KVER" -initrd initrd.gz \
  -append "console=ttyS0 panic=-1 loglevel=4 $FAST" > "$LOG" 2>&1 || rc=$?
tr -d '\r' < "$LOG" | grep -aE '^(HIL|hil)|passed,' || true
lap "VM (qemu exit $rc, console in $LOG)"
summary=$(tr -d '\r' < "$LOG" | grep -aE '^[0-9]+ passed, [0-9]+ failed' | tail -1)
fail=$(tr -d '\r' < "$LOG" | awk '/^HIL-EXIT/{print $2}')
if [ -z "$summary" ]; then
  echo "hil: the VM gave no result (qemu exit $rc); the console's end:"; tr -d '\r' < "$LOG" | tail -30
  echo "0 passed, 1 failed"
  exit 1
fi
[ "$fail" = 0 ]
