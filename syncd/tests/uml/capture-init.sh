#!/bin/sh
# PID 1 inside UML: capture the kernel master sync daemon's multicast (v1, then v0) with the
# matching /proc/net/ip_vs_conn snapshots. Run through run-capture.sh; OUT comes from the
# kernel command line (UML hands unknown key=value parameters to init as environment).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
HERE=$(dirname "$0")
: "${OUT:?OUT not set}"
mkdir -p "$OUT"
exec >"$OUT/capture.log" 2>&1
set -x
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs tmpfs /run
# The host may have no /lib/modules to bind over: point modprobe at a root of our own (in UML's tmpfs).
mkdir -p /run/modroot/lib; ln -s /usr/lib/uml/modules /run/modroot/lib/modules
for m in ipv6 veth bridge ip_vs ip_vs_rr; do modprobe -d /run/modroot $m; done

WWW=/run/www; mkdir -p $WWW; echo hello-from-rs > "$WWW/index.html"
for n in c d r r2 b lan; do ip netns add $n; ip -n $n link set lo up; done
# Client LAN 192.0.2.0/24 is a bridge: the DR real server r2 sits on it and answers clients
# directly. The NAT real server r sits behind the director on 198.51.100.0/24.
ip -n lan link add br0 type bridge; ip -n lan link set br0 up
for n in c d r2; do
    ip link add ${n}0 netns $n type veth peer name lan$n netns lan
    ip -n lan link set lan$n master br0; ip -n lan link set lan$n up
done
ip link add d1 netns d type veth peer name r0 netns r
ip link add s0 netns d type veth peer name s1 netns b

ip -n c addr add 192.0.2.2/24 dev c0; ip -n c addr add 192.0.2.3/24 dev c0
ip -n c addr add 2001:db8:1::2/64 dev c0 nodad
ip -n c link set c0 up; ip -n c route add default via 192.0.2.1; ip -n c -6 route add default via 2001:db8:1::1
ip -n d addr add 192.0.2.1/24 dev d0; ip -n d addr add 2001:db8:1::1/64 dev d0 nodad; ip -n d link set d0 up
ip -n d addr add 198.51.100.1/24 dev d1; ip -n d addr add 2001:db8:2::1/64 dev d1 nodad; ip -n d link set d1 up
ip -n d addr add 203.0.113.1/24 dev s0; ip -n d link set s0 up
ip -n b addr add 203.0.113.2/24 dev s1; ip -n b link set s1 up
ip -n r addr add 198.51.100.2/24 dev r0; ip -n r addr add 2001:db8:2::2/64 dev r0 nodad; ip -n r link set r0 up
ip -n r route add default via 198.51.100.1; ip -n r -6 route add default via 2001:db8:2::1
# IPv6 VIPs live outside the client's on-link prefix: no neighbour discovery for an address on lo.
# Direct routing: r2 accepts the VIP itself but must not answer ARP for it.
ip netns exec r2 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
ip -n r2 addr add 192.0.2.20/24 dev r20; ip -n r2 link set r20 up
ip -n r2 addr add 192.0.2.101/32 dev lo
ip netns exec d sysctl -qw net.ipv4.ip_forward=1
ip netns exec d sysctl -qw net.ipv6.conf.all.forwarding=1
for a in 192.0.2.100 192.0.2.101 192.0.2.102; do ip -n d addr add $a/32 dev lo; done
ip -n d addr add 2001:db8:100::100/128 dev lo nodad

ipvs() { ip netns exec d ipvsadm "$@"; }
ipvs -A -t 192.0.2.100:80 -s rr;        ipvs -a -t 192.0.2.100:80 -r 198.51.100.2:8080 -m
ipvs -A -u 192.0.2.100:53 -s rr;        ipvs -a -u 192.0.2.100:53 -r 198.51.100.2:5353 -m
ipvs -A -t 192.0.2.101:80 -s rr;        ipvs -a -t 192.0.2.101:80 -r 192.0.2.20:80 -g
ipvs -A -t 192.0.2.102:80 -s rr -p 300; ipvs -a -t 192.0.2.102:80 -r 198.51.100.2:8080 -m
ipvs -A -t '[2001:db8:100::100]:80' -s rr
ipvs -a -t '[2001:db8:100::100]:80' -r '[2001:db8:2::2]:8080' -m
ipvs -Ln > "$OUT/services.txt"

ip netns exec r busybox httpd -p 8080 -h "$WWW"
ip netns exec r2 busybox httpd -p 80 -h "$WWW"
ip netns exec r socat -u UDP-RECV:5353 /dev/null &
UDP_PID=$!
sleep 1

capture() { # $1 = name, $2 = traffic.py arguments
    ip netns exec d tcpdump -i s0 -U -n -w "$OUT/$1.pcap" udp port 8848 &
    TCPDUMP_PID=$!
    sleep 1
    ip netns exec d ipvsadm --start-daemon master --mcast-interface s0 --syncid 5
    ip netns exec d ipvsadm -L --daemon
    ip netns exec c /usr/bin/python3 "$HERE/traffic.py" $2
    # The master thread holds a partly filled buffer for up to 2 s (IPVS_SYNC_FLUSH_TIME).
    sleep 4
    ip netns exec d cat /proc/net/ip_vs_conn > "$OUT/$1.ip_vs_conn"
    ip netns exec d cat /proc/net/ip_vs_conn_sync > "$OUT/$1.ip_vs_conn_sync"
    ip netns exec d ipvsadm --stop-daemon master
    sleep 1
    kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID"
}

ip netns exec d sysctl net.ipv4.vs.sync_version
capture v1 "192.0.2.2 2001:db8:1::2"
ip netns exec d sysctl -qw net.ipv4.vs.sync_version=0
capture v0 "192.0.2.3"
ipvs -Ln --stats > "$OUT/stats.txt"

kill "$UDP_PID"
echo CAPTURE_DONE
sync
halt -f
