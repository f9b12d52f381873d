#!/bin/sh
# PID 1 inside UML: a kernel backup sync daemon receives messages built by this crate's
# emitter (examples/send_sync) and must show the entries in /proc/net/ip_vs_conn and forward
# matching packets with the entries' forwarding method. Run through run-backup.sh; OUT and
# SEND_SYNC come from the kernel command line.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
: "${OUT:?OUT not set}"; : "${SEND_SYNC:?SEND_SYNC not set}"
mkdir -p "$OUT"
exec >"$OUT/backup.log" 2>&1
set -x
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs tmpfs /run
mkdir -p /run/modroot/lib; ln -s /usr/lib/uml/modules /run/modroot/lib/modules
for m in ipv6 veth bridge ip_vs ip_vs_rr; do modprobe -d /run/modroot $m; done

# m sends sync messages to b over the sync link 203.0.113.0/24. b is a director with the
# VIPs but no service for them, so synced entries stay unbound and keep the forwarding
# method they arrived with. c is a client on the bridged LAN with b and the DR server r2;
# r is the NAT server behind b.
for n in m b c r r2 lan; do ip netns add $n; ip -n $n link set lo up; done
ip link add s0 netns m type veth peer name s1 netns b
ip -n m addr add 203.0.113.1/24 dev s0; ip -n m link set s0 up
ip -n b addr add 203.0.113.2/24 dev s1; ip -n b link set s1 up
ip -n lan link add br0 type bridge; ip -n lan link set br0 up
for n in c b r2; do
    ip link add ${n}0 netns $n type veth peer name lan$n netns lan
    ip -n lan link set lan$n master br0; ip -n lan link set lan$n up
done
ip link add b1 netns b type veth peer name r0 netns r
ip -n c addr add 192.0.2.2/24 dev c0; ip -n c link set c0 up; ip -n c route add default via 192.0.2.1
ip -n b addr add 192.0.2.1/24 dev b0; ip -n b link set b0 up
ip -n b addr add 198.51.100.1/24 dev b1; ip -n b link set b1 up
ip -n r addr add 198.51.100.2/24 dev r0; ip -n r link set r0 up; ip -n r route add default via 198.51.100.1
ip netns exec r2 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
ip -n r2 addr add 192.0.2.20/24 dev r20; ip -n r2 link set r20 up; ip -n r2 addr add 192.0.2.101/32 dev lo
ip netns exec b sysctl -qw net.ipv4.ip_forward=1
for a in 192.0.2.100 192.0.2.101 192.0.2.102; do ip -n b addr add $a/32 dev lo; done
# IPVS hooks its netfilter entry points only once a service exists: one unrelated service.
ip netns exec b ipvsadm -A -t 192.0.2.99:80 -s rr

ip netns exec b ipvsadm --start-daemon backup --mcast-interface s1 --syncid 5
ip netns exec b ipvsadm -L --daemon
sleep 1

ip netns exec m "$SEND_SYNC" 203.0.113.1 1 5 \
    tcp/192.0.2.2:40001/192.0.2.100:80/198.51.100.2:8080/masq/ESTABLISHED/900 \
    tcp/192.0.2.2:40002/192.0.2.101:80/192.0.2.20:80/route/FIN_WAIT/120 \
    udp/192.0.2.2:40003/192.0.2.100:53/198.51.100.2:5353/masq/UDP/300 \
    udp/192.0.2.2:40004/192.0.2.101:53/192.0.2.20:53/route/UDP/300 \
    tcp/192.0.2.2:0/192.0.2.102:80/198.51.100.2:8080/masq/ASSURED/300/template \
    'tcp/[2001:db8:1::2]:40005/[2001:db8:100::100]:80/[2001:db8:2::2]:8080/masq/TIME_WAIT/120'
sleep 1
ip netns exec b cat /proc/net/ip_vs_conn > "$OUT/backup-v1.ip_vs_conn"
# Version 0 carries no timeout: the backup applies its CLOSE_WAIT default (60 s).
ip netns exec m "$SEND_SYNC" 203.0.113.1 0 5 \
    tcp/192.0.2.2:40006/192.0.2.100:80/198.51.100.2:8080/masq/CLOSE_WAIT/0
# A message for another sync id must be ignored.
ip netns exec m "$SEND_SYNC" 203.0.113.1 1 6 \
    tcp/192.0.2.2:40007/192.0.2.100:80/198.51.100.2:8080/masq/ESTABLISHED/900
sleep 1
ip netns exec b cat /proc/net/ip_vs_conn > "$OUT/backup-v0.ip_vs_conn"

# Packets of the synced connections, from the client: NAT rewrites the destination, DR
# keeps the VIP and hands the frame to r2.
ip netns exec r tcpdump -l -n -i r0 'tcp or udp' > "$OUT/r.tcpdump" 2>&1 &
T1=$!
ip netns exec r2 tcpdump -l -n -i r20 'tcp or udp' > "$OUT/r2.tcpdump" 2>&1 &
T2=$!
sleep 1
ip netns exec c /usr/bin/python3 - <<'PY'
import socket
for port, vip, vport in ((40003, "192.0.2.100", 53), (40004, "192.0.2.101", 53)):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.0.2.2", port)); s.sendto(b"synced", (vip, vport)); s.close()
for port, vip in ((40001, "192.0.2.100"), (40002, "192.0.2.101")):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("192.0.2.2", port)); s.setblocking(False); s.connect_ex((vip, 80))
    socket.socket  # keep s open until the SYN has left
    import time; time.sleep(0.3); s.close()
PY
sleep 2
kill $T1 $T2; wait $T1 $T2
ip netns exec b cat /proc/net/ip_vs_conn > "$OUT/backup-after.ip_vs_conn"

check() { # $1 description, $2 file, $3 fixed string expected
    if grep -qF -- "$3" "$2"; then echo "PASS $1"; else echo "FAIL $1"; FAILED=1; fi
}
FAILED=0
V1="$OUT/backup-v1.ip_vs_conn"; V0="$OUT/backup-v0.ip_vs_conn"
check "v1 tcp masq ESTABLISHED" "$V1" "TCP C0000202 9C41 C0000264 0050 C6336402 1F90 ESTABLISHED"
check "v1 tcp route FIN_WAIT" "$V1" "TCP C0000202 9C42 C0000265 0050 C0000214 0050 FIN_WAIT"
check "v1 udp masq" "$V1" "UDP C0000202 9C43 C0000264 0035 C6336402 14E9 UDP"
check "v1 udp route" "$V1" "UDP C0000202 9C44 C0000265 0035 C0000214 0035 UDP"
check "v1 template" "$V1" "TCP C0000202 0000 C0000266 0050 C6336402 1F90 ASSURED"
check "v1 ipv6" "$V1" "TCP 2001:0db8:0001:0000:0000:0000:0000:0002 9C45 2001:0db8:0100:0000:0000:0000:0000:0100 0050 2001:0db8:0002:0000:0000:0000:0000:0002 1F90 TIME_WAIT"
check "v0 tcp CLOSE_WAIT" "$V0" "TCP C0000202 9C46 C0000264 0050 C6336402 1F90 CLOSE_WAIT"
if grep -qF 9C47 "$V0"; then echo "FAIL other sync id ignored"; FAILED=1; else echo "PASS other sync id ignored"; fi
check "masq udp forwarded to the real server" "$OUT/r.tcpdump" "192.0.2.2.40003 > 198.51.100.2.5353"
check "route udp forwarded with the VIP kept" "$OUT/r2.tcpdump" "192.0.2.2.40004 > 192.0.2.101.53"
check "masq tcp forwarded to the real server" "$OUT/r.tcpdump" "192.0.2.2.40001 > 198.51.100.2.8080"
check "route tcp forwarded with the VIP kept" "$OUT/r2.tcpdump" "192.0.2.2.40002 > 192.0.2.101.80"
[ $FAILED = 0 ] && echo BACKUP_OK
sync
halt -f
