#!/usr/bin/env python3
"""A stand-in upstream DNS server for tests (UDP and TCP on one address).

Answers `A` for names listed on the command line as NAME=IP, SERVFAIL for names
starting with "servfail", NXDOMAIN for everything else, and appends every question it
receives ("name type") to a log file, so a test can tell what was forwarded.

usage: upstream_dns.py ADDRESS PORT LOGFILE [NAME=IP ...]
"""
import socket
import struct
import sys
import threading


def parse_question(packet):
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length
    qtype = struct.unpack("!H", packet[offset + 1 : offset + 3])[0]
    return ".".join(labels).lower(), qtype, offset + 5


def answer(packet, records, log):
    name, qtype, end = parse_question(packet)
    with open(log, "a") as f:
        f.write(f"{name} {qtype}\n")
    question = packet[12:end]
    flags = 0x8180  # response, recursion desired and available
    answers = b""
    if name.startswith("servfail"):
        flags |= 2
    elif name in records and qtype == 1:
        ip = socket.inet_aton(records[name])
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + ip
    elif name not in records:
        flags |= 3
    header = packet[:2] + struct.pack("!HHHHH", flags, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def serve_udp(address, port, records, log):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    while True:
        packet, peer = sock.recvfrom(4096)
        sock.sendto(answer(packet, records, log), peer)


def serve_tcp(address, port, records, log):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(16)
    while True:
        conn, _ = sock.accept()
        with conn:
            length = struct.unpack("!H", conn.recv(2))[0]
            packet = b""
            while len(packet) < length:
                packet += conn.recv(length - len(packet))
            reply = answer(packet, records, log)
            conn.sendall(struct.pack("!H", len(reply)) + reply)


def main():
    address, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    records = dict(arg.lower().split("=", 1) for arg in sys.argv[4:])
    threading.Thread(target=serve_tcp, args=(address, port, records, log), daemon=True).start()
    serve_udp(address, port, records, log)


if __name__ == "__main__":
    main()
