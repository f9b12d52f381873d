#!/usr/bin/python3
"""Real connections through the IPVS virtual services, from a chosen source address.

Usage: traffic.py SRC4 [SRC6]
busybox wget cannot pick its source address; the v0 capture needs a client address of
its own so its connections can be told apart from the v1 capture's in ip_vs_conn.
"""
import http.client
import socket
import sys

src4 = sys.argv[1]
src6 = sys.argv[2] if len(sys.argv) > 2 else None


def get(host, src, family_note):
    conn = http.client.HTTPConnection(host, timeout=5, source_address=(src, 0))
    conn.request("GET", "/")
    body = conn.getresponse().read()
    conn.close()
    print(f"GET {family_note} {host}: {body!r}")


# NAT, DR and persistent NAT services, a few connections each.
for vip in ("192.0.2.100", "192.0.2.101", "192.0.2.102"):
    for _ in range(2):
        get(vip, src4, "v4")

if src6:
    for _ in range(2):
        get("[2001:db8:100::100]:80", src6, "v6")

# UDP: the kernel syncs a UDP connection once it has seen sync_threshold (3) packets.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src4, 0))
for i in range(5):
    s.sendto(b"ping %d" % i, ("192.0.2.100", 53))
s.close()
print("UDP sent")
