#!/usr/bin/python3
"""A TCP payload stream (and a UDP echo) with an end-to-end checksum, for the real-kernel
tests (run inside a network namespace with `ip netns exec`).

  tcp_stream.py server --bind IP --port P [--progress BYTES] [--timeout S]
  tcp_stream.py client --connect IP --port P (--bytes N | --until-stdin-eof)
                       [--sport P] [--seed S] [--rate-mbps R] [--timeout S]
  tcp_stream.py probe  --connect IP --port P [--timeout S]
  tcp_stream.py announce --iface DEV --ip IP     one gratuitous ARP from DEV
  tcp_stream.py udp-echo --bind IP --port P [--timeout S]
  tcp_stream.py udp-send --connect IP --port P --bytes N [--sport P] [--timeout S]

Every mode prints JSON lines on stdout, flushed at once, so a test can
follow it while it runs:

  server: {"event":"listening"} {"event":"accepted","peer":"IP:PORT"}
          {"event":"progress","bytes":N} ... {"event":"done","bytes":N,"sha256":H,"peer":..}
  client: {"event":"connected","local":"IP:PORT"} {"event":"progress","bytes":N} ...
          {"event":"done","bytes":N,"sha256":H,"server_sha256":H,"local":..}
  probe:  {"event":"connected"} (exit 0) or {"event":"timeout"} (exit 3)
          or {"event":"refused"} (exit 4)

  udp-echo: {"event":"listening"} {"event":"echoed","bytes":N,"peer":"IP:PORT","sha256":H}
  udp-send: {"event":"done","bytes":N,"sha256":H,"echo_sha256":H} (exit 0 only if equal)

udp-echo sends every datagram back to its sender, with the same bytes,
until --timeout passes without one; udp-send sends one datagram of N
pseudo-random bytes (larger than the MTU, the kernel fragments it) and
waits for its echo, sending it again every second until --timeout.

The server reads to EOF, then answers the sha256 of what it received
(hex, one line) and closes; the client sends a deterministic
pseudo-random payload, half-closes, reads the server's digest and exits 0
only if it matches its own. Any socket error (a reset, a timeout) prints
{"event":"error",...} and exits 1.
"""
import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time

CHUNK = 64 * 1024


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def fail(e):
    emit(event="error", error="%s: %s" % (type(e).__name__, e))
    sys.exit(1)


def payload(seed):
    """Endless deterministic chunks: sha256 in counter mode (fast enough
    and reproducible without any dependency)."""
    i = 0
    while True:
        block = bytearray()
        while len(block) < CHUNK:
            block += hashlib.sha256(b"%d:%d" % (seed, i)).digest() * 64
            i += 1
        yield bytes(block[:CHUNK])


def server(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(1)
    ls.settimeout(a.timeout)
    emit(event="listening")
    try:
        conn, peer = ls.accept()
    except OSError as e:
        fail(e)
    conn.settimeout(a.timeout)
    peer_s = "%s:%d" % peer
    emit(event="accepted", peer=peer_s)
    h = hashlib.sha256()
    n = 0
    next_report = a.progress
    try:
        while True:
            b = conn.recv(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
            if a.progress and n >= next_report:
                emit(event="progress", bytes=n)
                next_report = n + a.progress
        digest = h.hexdigest()
        conn.sendall((digest + "\n").encode())
        conn.shutdown(socket.SHUT_WR)
        # Wait for the client's close so our FIN is acknowledged.
        while conn.recv(4096):
            pass
        conn.close()
    except OSError as e:
        fail(e)
    emit(event="done", bytes=n, sha256=digest, peer=peer_s)


def client(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    try:
        if a.sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", a.sport))
        s.connect((a.connect, a.port))
    except OSError as e:
        fail(e)
    local = "%s:%d" % s.getsockname()
    emit(event="connected", local=local)
    stop = threading.Event()
    if a.until_stdin_eof:
        def watch():
            sys.stdin.read()
            stop.set()
        threading.Thread(target=watch, daemon=True).start()
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    next_report = a.progress
    try:
        for chunk in payload(a.seed):
            if a.until_stdin_eof:
                if stop.is_set():
                    break
            else:
                if n >= a.bytes:
                    break
                chunk = chunk[: a.bytes - n]
            if a.rate_mbps:
                # Pace: never ahead of the rate (bounded, not a sync sleep).
                ahead = n * 8 / (a.rate_mbps * 1e6) - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            s.sendall(chunk)
            h.update(chunk)
            n += len(chunk)
            if a.progress and n >= next_report:
                emit(event="progress", bytes=n)
                next_report = n + a.progress
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n"):
            b = s.recv(4096)
            if not b:
                break
            reply += b
        s.close()
    except OSError as e:
        fail(e)
    digest = h.hexdigest()
    theirs = reply.decode(errors="replace").strip()
    emit(event="done", bytes=n, sha256=digest, server_sha256=theirs, local=local)
    sys.exit(0 if theirs == digest else 2)


def probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    try:
        s.connect((a.connect, a.port))
    except socket.timeout:
        emit(event="timeout")
        sys.exit(3)
    except ConnectionRefusedError:
        emit(event="refused")
        sys.exit(4)
    except OSError as e:
        fail(e)
    emit(event="connected")
    s.close()


def announce(a):
    """A gratuitous ARP request (broadcast) from DEV's MAC for IP: lets the
    bridges on the way learn where DEV's MAC is."""
    with open("/sys/class/net/%s/address" % a.iface) as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    ip = socket.inet_aton(a.ip)
    frame = (b"\xff" * 6 + mac + b"\x08\x06"
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
             + mac + ip + b"\x00" * 6 + ip)
    frame += b"\x00" * (60 - len(frame))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    s.send(frame)
    s.close()
    emit(event="done", iface=a.iface)


def udp_echo(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    s.settimeout(a.timeout)
    emit(event="listening")
    try:
        while True:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
            emit(event="echoed", bytes=len(data), peer="%s:%d" % peer,
                 sha256=hashlib.sha256(data).hexdigest())
    except socket.timeout:
        emit(event="idle")


def udp_send(a):
    data = next(payload(a.seed))[:a.bytes] if a.bytes <= CHUNK else None
    if data is None:
        fail(ValueError("--bytes over %d" % CHUNK))
    digest = hashlib.sha256(data).hexdigest()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.sport:
        s.bind(("", a.sport))
    s.connect((a.connect, a.port))
    s.settimeout(1.0)
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        s.send(data)
        try:
            echo = s.recv(65535)
        except socket.timeout:
            continue
        except OSError as e:
            fail(e)
        theirs = hashlib.sha256(echo).hexdigest()
        emit(event="done", bytes=len(echo), sha256=digest, echo_sha256=theirs)
        sys.exit(0 if theirs == digest else 2)
    emit(event="timeout")
    sys.exit(3)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--bind", required=True)
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--progress", type=int, default=0)
    sv.add_argument("--timeout", type=float, default=60)
    cl = sub.add_parser("client")
    cl.add_argument("--connect", required=True)
    cl.add_argument("--port", type=int, required=True)
    g = cl.add_mutually_exclusive_group(required=True)
    g.add_argument("--bytes", type=int)
    g.add_argument("--until-stdin-eof", action="store_true")
    cl.add_argument("--sport", type=int, default=0)
    cl.add_argument("--seed", type=int, default=1)
    cl.add_argument("--rate-mbps", type=float, default=0)
    cl.add_argument("--progress", type=int, default=0)
    cl.add_argument("--timeout", type=float, default=60)
    pr = sub.add_parser("probe")
    pr.add_argument("--connect", required=True)
    pr.add_argument("--port", type=int, required=True)
    pr.add_argument("--timeout", type=float, default=3)
    an = sub.add_parser("announce")
    an.add_argument("--iface", required=True)
    an.add_argument("--ip", required=True)
    ue = sub.add_parser("udp-echo")
    ue.add_argument("--bind", required=True)
    ue.add_argument("--port", type=int, required=True)
    ue.add_argument("--timeout", type=float, default=60)
    us = sub.add_parser("udp-send")
    us.add_argument("--connect", required=True)
    us.add_argument("--port", type=int, required=True)
    us.add_argument("--bytes", type=int, required=True)
    us.add_argument("--seed", type=int, default=1)
    us.add_argument("--sport", type=int, default=0)
    us.add_argument("--timeout", type=float, default=30)
    a = p.parse_args()
    {"server": server, "client": client, "probe": probe, "announce": announce,
     "udp-echo": udp_echo, "udp-send": udp_send}[a.mode](a)


if __name__ == "__main__":
    main()
