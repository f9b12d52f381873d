#!/usr/bin/python3
"""Writes the UDP payloads of the kernel fixtures' pcaps into corpus/ as fuzzing seeds."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "corpus"), exist_ok=True)
for name in ("v1", "v0"):
    data = open(os.path.join(here, f"../tests/fixtures/kernel-6.1/{name}.pcap"), "rb").read()
    at, i = 24, 0
    while at + 16 <= len(data):
        incl = struct.unpack("<I", data[at + 8:at + 12])[0]
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        ip = frame[14:]
        udp = ip[(ip[0] & 15) * 4:]
        length = struct.unpack(">H", udp[4:6])[0]
        open(os.path.join(here, f"corpus/{name}-{i}"), "wb").write(udp[8:length])
        i += 1
