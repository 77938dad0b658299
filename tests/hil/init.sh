#!/bin/sh
# /init of the HIL test VM (busybox ash): load the real drivers (vivid, configfs, gpio-sim),
# make a 16-line gpio-sim chip, run the project's checks (/bin/hil-check drives /bin/edge-ad),
# print its "N passed, M failed" and "HIL-EXIT n", power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
read up _ < /proc/uptime
echo "HIL: init at uptime ${up}s"
while read -r ko args; do
  insmod "/lib/modules/$ko" $args || echo "HIL: insmod $ko failed"
done < /etc/modules.load
mount -t configfs none /sys/kernel/config
C=/sys/kernel/config/gpio-sim/hil
mkdir $C && mkdir $C/bank0 && echo 16 > $C/bank0/num_lines && echo hil-plc > $C/bank0/label && echo 1 > $C/live
CHIP=$(cat $C/bank0/chip_name 2>/dev/null); DEV=$(cat $C/dev_name 2>/dev/null)
S=/sys/devices/platform/$DEV/$CHIP
echo "HIL: gpio-sim $CHIP ($DEV), camera: $(v4l2-ctl -d /dev/video0 --info 2>/dev/null | grep 'Card type' | tr -s ' ')"
v4l2-ctl -d /dev/video0 -l 2>/dev/null | grep -E 'osd_text_mode|test_pattern|disconnect|dropped' | sed 's/^/HIL: control /'
rc=1
if [ -c /dev/$CHIP ] && [ -c /dev/video0 ]; then
  /bin/hil-check /bin/edge-ad /dev/$CHIP $S /tmp/hil; rc=$?
else
  echo "hil: FAIL drivers: no /dev/$CHIP or /dev/video0"; echo "0 passed, 1 failed"
fi
read up _ < /proc/uptime
echo "HIL: done at uptime ${up}s"
echo "HIL-EXIT $rc"
sync
poweroff -f
