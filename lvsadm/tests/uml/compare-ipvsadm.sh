#!/bin/sh
# Compares lvsadm with ipvsadm 1.31 on a real IPVS table.
#
# Run as root inside UML (or any kernel with IPVS) with ip_vs and all 13 schedulers
# loaded: LVSADM=/path/to/lvsadm sh compare-ipvsadm.sh
# Works in its own network namespace (IPVS tables are per namespace), so the table it
# builds and flushes is its own. Exits non-zero, with a diff, on any mismatch.
set -u
: "${LVSADM:?set LVSADM to the lvsadm binary}"
IPVSADM=${IPVSADM:-ipvsadm}
NS=lvsadm-compare-$$
WORK=$(mktemp -d)
FAILED=0

in_ns() { ip netns exec "$NS" "$@"; }

cleanup() {
    in_ns "$IPVSADM" -C 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    FAILED=1
}

ip netns add "$NS" || exit 1
in_ns ip link set lo up
in_ns ip link add dummy0 type dummy
in_ns ip link set dummy0 up
in_ns ip addr add 192.0.2.1/24 dev dummy0
in_ns ip addr add 198.51.100.1/24 dev dummy0
in_ns ip -6 addr add 2001:db8::1/64 dev dummy0 nodad

# Every scheduler, DR/NAT/TUN (ipip, gue, gre), TCP/UDP/SCTP/fwmark, IPv4 and IPv6,
# persistence with netmasks, scheduler flags, one-packet scheduling, thresholds; and
# combinations of -p/-M, --pe, -o and -b with IPv4, IPv6 and fwmarks, whose order in -Sn
# lvsadm once got wrong (issue 15).
cat > "$WORK/table" <<'TABLE'
-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 198.51.100.3:8080 -m -w 3 -x 100 -y 50
-a -t 192.0.2.100:80 -r 198.51.100.2:8080 -m -w 1
-A -t 192.0.2.100:443 -s wrr -p 600 -M 255.255.255.0
-a -t 192.0.2.100:443 -r 198.51.100.4 -g -w 2
-a -t 192.0.2.100:443 -r 198.51.100.5 -i -w 1
-A -u 192.0.2.100:53 -s lc -o
-a -u 192.0.2.100:53 -r 198.51.100.6:5353 -m -w 0
-A --sctp-service 192.0.2.100:3868 -s wlc
-a --sctp-service 192.0.2.100:3868 -r 198.51.100.7 -g
-A -f 1 -s lblc
-a -f 1 -r 198.51.100.8 -g -w 5
-A -f 2 -6 -s lblcr -p
-a -f 2 -6 -r [2001:db8::8]:80 -g
-A -t 192.0.2.101:80 -s dh
-a -t 192.0.2.101:80 -r 198.51.100.12 -g -w 7
-A -t 192.0.2.102:80 -s sh -b sh-fallback,sh-port
-a -t 192.0.2.102:80 -r 198.51.100.9 -i --tun-type gue --tun-port 6080 --tun-csum
-A -t 192.0.2.103:80 -s sed -p 60
-a -t 192.0.2.103:80 -r 198.51.100.10 -i --tun-type gre --tun-csum
-A -t 192.0.2.104:80 -s nq
-a -t 192.0.2.104:80 -r 198.51.100.13 -i --tun-type gue --tun-port 5555 --tun-nocsum
-A -t [2001:db8::100]:80 -s fo -p 120 -M 64
-a -t [2001:db8::100]:80 -r [2001:db8::3]:80 -g
-a -t [2001:db8::100]:80 -r [2001:db8::2]:8080 -m -w 2
-A -u [2001:db8::100]:53 -s ovf
-a -u [2001:db8::100]:53 -r [2001:db8::4]:53 -m -x 10 -y 2
-A -t 192.0.2.105:80 -s mh -b mh-fallback,mh-port
-a -t 192.0.2.105:80 -r 198.51.100.11 -g
-A -t 192.0.2.107:80 -s mh -b mh-port -p 600
-a -t 192.0.2.107:80 -r 198.51.100.15 -g
-A -t 192.0.2.108:80 -s sh -b sh-fallback -p 300 -M 255.255.0.0
-A -u 192.0.2.109:53 -s sh -b sh-fallback,sh-port -p 60 -o
-A -u 192.0.2.110:53 -s rr -p 30 -M 255.255.255.128 -o
-A -u 192.0.2.113:53 -s mh -b mh-port -o
-A -t [2001:db8::101]:80 -s mh -b mh-fallback -p 90 -M 48
-A -u [2001:db8::102]:53 -s sh -b sh-port -p 45 -o
-A -f 3 -s sh -b sh-port -p 100
-A -f 4 -6 -s mh -b mh-fallback,mh-port -p 100 -M 96
-A -t 192.0.2.112:80 -s wrr -b flag-1,flag-3 -p 5
TABLE

# The SIP persistence engine, when its module can be loaded (the test lane loads modules
# with -d /run/uml-modroot; ip_vs cannot autoload it there).
modprobe -d /run/uml-modroot ip_vs_pe_sip 2>/dev/null || modprobe ip_vs_pe_sip 2>/dev/null
if grep -q '^ip_vs_pe_sip ' /proc/modules; then
    echo "-A -u 192.0.2.106:5060 -s rr -p 60 --pe sip" >> "$WORK/table"
    echo "-a -u 192.0.2.106:5060 -r 198.51.100.14:5060 -m -w 4" >> "$WORK/table"
    echo "-A -u 192.0.2.111:5060 -s sh -b sh-port -p 60 -M 255.255.255.0 --pe sip -o" >> "$WORK/table"
else
    echo "note: ip_vs_pe_sip not available, --pe not covered"
fi
WANT_SERVICES=$(grep -c '^-A' "$WORK/table")
WANT_DESTS=$(grep -c '^-a' "$WORK/table")

LISTINGS="-Sn|-Ln|-Ln --stats|-Ln --rate|-Ln --stats --exact|-Ln --thresholds|-Ln --persistent-conn|-Ln --tun-info|-Ln -t 192.0.2.100:80|-Ln -f 2 -6|-L --timeout"

# compare LABEL: every listing of ipvsadm against lvsadm's, on the current table.
compare() {
    label=$1
    services=$(in_ns "$IPVSADM" -Sn | grep -c '^-A')
    dests=$(in_ns "$IPVSADM" -Sn | grep -c '^-a')
    [ "$services" = "$WANT_SERVICES" ] && [ "$dests" = "$WANT_DESTS" ] ||
        fail "$label: table has $services services and $dests destinations, expected $WANT_SERVICES and $WANT_DESTS"
    old_ifs=$IFS
    IFS='|'
    for listing in $LISTINGS; do
        IFS=$old_ifs
        # shellcheck disable=SC2086 # the listing is a word list on purpose
        in_ns "$IPVSADM" $listing > "$WORK/ipvsadm.out" 2>&1
        # shellcheck disable=SC2086
        in_ns "$LVSADM" $listing > "$WORK/lvsadm.out" 2>&1
        if cmp -s "$WORK/ipvsadm.out" "$WORK/lvsadm.out"; then
            echo "ok: $label: $listing identical ($(wc -l < "$WORK/ipvsadm.out") lines)"
        else
            fail "$label: '$listing' differs (--- ipvsadm, +++ lvsadm)"
            diff -u "$WORK/ipvsadm.out" "$WORK/lvsadm.out"
        fi
        IFS='|'
    done
    IFS=$old_ifs
}

# 1. Built with lvsadm, one command at a time.
while read -r line; do
    # shellcheck disable=SC2086
    in_ns "$LVSADM" $line || fail "lvsadm $line: exit $?"
done < "$WORK/table"
compare "built by lvsadm commands"
# Optional: keep ipvsadm's own output as fixtures for lvsadm's offline tests.
if [ -n "${CAPTURE:-}" ]; then
    cp "$WORK/table" "$CAPTURE/table.txt"
    for listing in -Sn -Ln "-Ln --thresholds" "-Ln --tun-info" "-Ln --persistent-conn" "-Ln --stats"; do
        # shellcheck disable=SC2086
        in_ns "$IPVSADM" $listing > "$CAPTURE/ipvsadm$(echo "$listing" | tr -d ' ').txt"
    done
fi

# 2. Built with ipvsadm -R.
in_ns "$IPVSADM" -C
in_ns "$IPVSADM" -R < "$WORK/table" || fail "ipvsadm -R: exit $?"
compare "built by ipvsadm -R"

# 3. Built with lvsadm -R (one batch).
in_ns "$LVSADM" -C
in_ns "$LVSADM" -R < "$WORK/table" || fail "lvsadm -R: exit $?"
compare "built by lvsadm -R"

# 4. ipvsadm -R reads lvsadm -S, lvsadm -R reads ipvsadm -S.
in_ns "$LVSADM" -Sn > "$WORK/lvsadm.save"
in_ns "$IPVSADM" -Sn > "$WORK/ipvsadm.save"
in_ns "$LVSADM" -C
in_ns "$IPVSADM" -R < "$WORK/lvsadm.save" || fail "ipvsadm -R of lvsadm -Sn: exit $?"
in_ns "$IPVSADM" -Sn | cmp -s - "$WORK/ipvsadm.save" || fail "ipvsadm -R of lvsadm -Sn changed the table"
in_ns "$IPVSADM" -C
in_ns "$LVSADM" -R < "$WORK/ipvsadm.save" || fail "lvsadm -R of ipvsadm -Sn: exit $?"
in_ns "$IPVSADM" -Sn | cmp -s - "$WORK/ipvsadm.save" || fail "lvsadm -R of ipvsadm -Sn changed the table"

# 5. A restore file with one malformed line applies nothing.
in_ns "$LVSADM" -C
{
    head -n 5 "$WORK/table"
    echo "-a -t 192.0.2.100:80 -r 198.51.100.300:80 -m"
    tail -n +6 "$WORK/table"
} > "$WORK/bad"
in_ns "$LVSADM" -R < "$WORK/bad" > "$WORK/bad.out" 2>&1
status=$?
[ "$status" -ne 0 ] || fail "lvsadm -R accepted a malformed file"
grep -q '^line 6: ' "$WORK/bad.out" || { fail "no 'line 6:' error"; cat "$WORK/bad.out"; }
[ -z "$(in_ns "$IPVSADM" -Sn)" ] || fail "lvsadm -R of a malformed file changed the table"
echo "ok: malformed restore file: exit $status, $(cat "$WORK/bad.out"), table untouched"

# 6. A kernel refusal names its line: the second -A of one service.
{ head -n 1 "$WORK/table"; head -n 1 "$WORK/table"; } > "$WORK/dup"
in_ns "$IPVSADM" -R < "$WORK/dup" > /dev/null 2>&1
expected=$?
in_ns "$IPVSADM" -C
in_ns "$LVSADM" -R < "$WORK/dup" > "$WORK/dup.out" 2>&1
status=$?
[ "$status" = "$expected" ] || fail "duplicate service: exit $status, ipvsadm -R exits $expected"
grep -q '^line 2: Service already exists' "$WORK/dup.out" || { fail "duplicate service message"; cat "$WORK/dup.out"; }
echo "ok: kernel error: exit $status, $(cat "$WORK/dup.out")"

# 7. Timeouts, sync daemons, connections, zeroing, exit codes.
# same LABEL ARGS...: ipvsadm and lvsadm print the same thing and exit alike.
same() {
    label=$1
    shift
    in_ns "$IPVSADM" "$@" > "$WORK/ipvsadm.out" 2>&1
    a=$?
    in_ns "$LVSADM" "$@" > "$WORK/lvsadm.out" 2>&1
    b=$?
    if [ "$a" != "$b" ]; then
        fail "$label: ipvsadm exits $a ($(cat "$WORK/ipvsadm.out")), lvsadm $b ($(cat "$WORK/lvsadm.out"))"
    elif [ "$a" = 0 ] && ! cmp -s "$WORK/ipvsadm.out" "$WORK/lvsadm.out"; then
        fail "$label: output differs (--- ipvsadm, +++ lvsadm)"
        diff -u "$WORK/ipvsadm.out" "$WORK/lvsadm.out"
    else
        echo "ok: $label: both exit $a"
    fi
}
in_ns "$LVSADM" --set 900 120 300 || fail "lvsadm --set: exit $?"
in_ns "$IPVSADM" -L --timeout | grep -qx 'Timeout (tcp tcpfin udp): 900 120 300' || fail "--set not applied"
same "timeouts" -L --timeout
in_ns "$LVSADM" --start-daemon master --mcast-interface dummy0 --syncid 5 || fail "lvsadm --start-daemon: exit $?"
same "daemon list" -L --daemon
in_ns "$LVSADM" --stop-daemon master || fail "lvsadm --stop-daemon: exit $?"
same "no daemon" -L --daemon
same "connections" -Lnc
in_ns "$LVSADM" -C
in_ns "$LVSADM" -R < "$WORK/table" || fail "lvsadm -R: exit $?"
in_ns "$LVSADM" -Z || fail "lvsadm -Z: exit $?"
in_ns "$LVSADM" -Z -t 192.0.2.100:80 || fail "lvsadm -Z -t: exit $?"
same "zeroed stats" -Ln --stats
# Real connection entries and counters: a TCP SYN and a UDP datagram through NAT
# services (the replies never come; the entries and the counters are what matters).
in_ns socat -u /dev/null TCP4:192.0.2.100:80,sourceport=40000,connect-timeout=1 2>/dev/null
in_ns sh -c 'echo ping | socat -u - UDP6-SENDTO:[2001:db8::100]:53,sourceport=40001'
in_ns "$IPVSADM" -Lnc | sed 's/^\(...\) [0-9][0-9]:[0-9][0-9] /\1 mm:ss /' > "$WORK/ipvsadm.conn"
in_ns "$LVSADM" -Lnc | sed 's/^\(...\) [0-9][0-9]:[0-9][0-9] /\1 mm:ss /' > "$WORK/lvsadm.conn"
if [ "$(tail -n +3 "$WORK/ipvsadm.conn" | wc -l)" != 2 ]; then
    fail "expected two connection entries"
    cat "$WORK/ipvsadm.conn"
elif cmp -s "$WORK/ipvsadm.conn" "$WORK/lvsadm.conn"; then
    echo "ok: -Lnc with 2 entries identical (expiry masked)"
else
    fail "-Lnc differs (--- ipvsadm, +++ lvsadm)"
    diff -u "$WORK/ipvsadm.conn" "$WORK/lvsadm.conn"
fi
[ -n "${CAPTURE:-}" ] && in_ns cat /proc/net/ip_vs_conn > "$CAPTURE/proc-ip_vs_conn.txt"
# The kernel folds per-CPU counters into what it reports on its 2 s estimator tick: wait for
# the tick after the traffic, or the two listings can straddle it.
sleep 3
same "counters after traffic" -Ln --stats --exact
same "duplicate service" -A -t 192.0.2.100:80
same "missing service" -D -t 192.0.2.199:80
same "missing destination" -d -t 192.0.2.100:80 -r 198.51.100.99:80
same "forward option on delete" -d -t 192.0.2.100:80 -r 198.51.100.2:8080 -m
in_ns "$LVSADM" -d -t 192.0.2.100:80 -r 198.51.100.2:8080 || fail "lvsadm -d of a NAT destination: exit $?"
in_ns "$IPVSADM" -Ln -t 192.0.2.100:80 | grep -q 198.51.100.2:8080 && fail "lvsadm -d left the destination"
same "after delete" -Ln -t 192.0.2.100:80
same "forward option on a service" -A -t 192.0.2.150:80 -m
same "bad address" -A -t 192.0.2.300:80
same "two commands" -A -D -t 192.0.2.150:80
same "list a missing service" -Ln -t 192.0.2.199:80
in_ns "$LVSADM" -C
same "empty table" -Ln
same "empty save" -Sn

in_ns "$LVSADM" -C
[ "$FAILED" = 0 ] && echo "PASS: lvsadm matches ipvsadm" || echo "FAILED"
exit "$FAILED"
