#!/bin/sh
# Boots UML (Linux 6.1, IPVS as modules) with the host's root as its root, loads ip_vs,
# every scheduler and dummy, and runs compare-ipvsadm.sh against LVSADM (default: the
# debug build in /work/target-lvsadm). Exit status and log come back through a host dir.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
LVSADM=${LVSADM:-/work/target-lvsadm/debug/lvsadm}
OUT=$(mktemp -d)
cat > "$OUT/init.sh" <<INIT
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/uml-modroot/lib
ln -s /usr/lib/uml/modules /run/uml-modroot/lib/modules
ip link set lo up
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_mh dummy; do
    modprobe -d /run/uml-modroot \$m || echo "modprobe \$m failed"
done
LVSADM='$LVSADM' sh '$HERE/compare-ipvsadm.sh' > '$OUT/result.log' 2>&1
echo \$? > '$OUT/status'
sync
halt -f
INIT
chmod +x "$OUT/init.sh"
timeout 300 linux.uml mem=512M rootfstype=hostfs rootflags=/ rw init="$OUT/init.sh" \
    con=null con0=null,fd:1 > "$OUT/console.log" 2>&1
cat "$OUT/result.log" 2>/dev/null || cat "$OUT/console.log"
status=$(cat "$OUT/status" 2>/dev/null || echo 1)
rm -rf "$OUT"
exit "$status"
