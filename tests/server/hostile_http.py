#!/usr/bin/env python3
"""Hostile HTTP clients against keeld, and a well-behaved one measuring whether it is still served.

  hostile_http.py PORT TOKEN KIND COUNT [--from ADDR] [--probes N] [--keeld-pid PID]

KIND: idle (connect, send nothing), slowloris (a header byte every 2 s, never finishing),
bigheader (headers past any sane size, sent as fast as keeld reads), sse (GET /v1/logs/stream,
never reading a byte). COUNT hostile connections are opened from ADDR (a 127/8 address: loopback
only), held, and meanwhile N probes (GET /v1/devices with the token, from 127.0.0.1, 5 s timeout
each) are made. Prints one JSON line: connections the hostile side got, probes answered, probe
latency p50/max in ms, keeld's RSS and threads (from /proc) at the peak. Exit 0 unless the tool
itself fails; the caller judges the figures.
"""
import json
import os
import socket
import sys
import threading
import time


def open_conn(port, src):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def probe(port, token):
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("GET /v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Connection: close\r\n\r\n" % token).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, (time.monotonic() - t0) * 1000.0


def proc_figures(pid):
    rss = threads = 0
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


def main():
    port, token, kind, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    args = sys.argv[5:]
    opt = lambda name, d: args[args.index(name) + 1] if name in args else d
    src, probes, pid = opt("--from", "127.0.0.2"), int(opt("--probes", "20")), int(opt("--keeld-pid", "0"))
    conns, stop = [], threading.Event()
    got = 0
    for _ in range(count):
        try:
            s = open_conn(port, src)
            if kind == "sse":
                s.sendall(("GET /v1/logs/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                           % token).encode())
            elif kind in ("slowloris", "bigheader"):
                s.sendall(b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n")
            conns.append(s)
            got += 1
        except OSError:
            pass

    def feed():  # slow-loris drip / oversized headers; a connection keeld closed is dropped
        i = 0
        while not stop.is_set():
            for s in list(conns):
                try:
                    if kind == "slowloris":
                        s.send(b"X-a%d: b\r\n" % i)
                    elif kind == "bigheader":
                        s.setblocking(False)
                        s.send(b"X-Big: " + b"a" * 65536)
                except BlockingIOError:
                    pass
                except OSError:
                    conns.remove(s)
            i += 1
            stop.wait(2.0 if kind == "slowloris" else 0.05)
    t = None
    if kind in ("slowloris", "bigheader"):
        t = threading.Thread(target=feed, daemon=True)
        t.start()
    time.sleep(1.0)  # let keeld take them all in
    rss = threads = 0
    lat, ok = [], 0
    for _ in range(probes):
        good, ms = probe(port, token)
        ok += good
        lat.append(ms)
        r, th = proc_figures(pid) if pid else (0, 0)
        rss, threads = max(rss, r), max(threads, th)
    held = 0
    for s in conns:  # still open from keeld's side? (a closed one reads EOF or errors at once)
        try:
            s.setblocking(False)
            held += 0 if s.recv(1, socket.MSG_PEEK) == b"" else 1
        except BlockingIOError:
            held += 1
        except OSError:
            pass
    stop.set()
    for s in conns:
        s.close()
    lat.sort()
    print(json.dumps({"kind": kind, "opened": got, "held": held, "probes": probes, "answered": ok,
                      "p50_ms": round(lat[len(lat) // 2], 1), "max_ms": round(lat[-1], 1),
                      "rss_mb": rss, "threads": threads}))


if __name__ == "__main__":
    main()
