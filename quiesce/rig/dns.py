"""A minimal DNS SRV query (stdlib only), to read what Consul DNS answers."""

from __future__ import annotations

import random
import socket
import struct


def _encode_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length == 0:
            return offset + 1
        offset += length + 1


def query_srv(server: str, port: int, name: str, timeout: float = 2.0) -> list[tuple[int, str]]:
    """``(port, target-offset)`` pairs of the SRV answers for ``name``; ports are what matter."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name)
    packet += struct.pack(">HH", 33, 1)  # QTYPE=SRV, QCLASS=IN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, port))
        data, _ = s.recvfrom(65535)
    _, _, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    offset = 12
    for _ in range(qd):
        offset = _skip_name(data, offset) + 4
    answers = []
    for _ in range(an):
        offset = _skip_name(data, offset)
        rtype, _, _, rdlength = struct.unpack(">HHIH", data[offset : offset + 10])
        offset += 10
        if rtype == 33:
            _, _, srv_port = struct.unpack(">HHH", data[offset : offset + 6])
            answers.append((srv_port, f"rdata@{offset + 6}"))
        offset += rdlength
    return answers
