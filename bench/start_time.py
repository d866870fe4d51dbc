#!/usr/bin/python3
"""Start time, side by side: katsubushi-cpp and go-katsubushi, alternating
starts in one run.

  listen:    process start (just before fork/exec) -> the memcached port
             accepts a connection on 127.0.0.1;
  first ID:  process start -> the first `get id` answered with a VALUE.
With a static -worker-id (20 starts each by default), and with -redis against
a local redis-server (fewer starts: each waits out the raus-compatible
discovery, about 3 s, before it may claim a worker id; the rest is what the
server adds). The Go binary is /work/shared/peer/katsubushi (or --go); its
rows are skipped when it is absent.

Usage: bench/start_time.py [--build build] [--starts 20] [--redis-starts 3] [--go PATH]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

from benchlib import free_port, wait_port

POLL_S = 0.0002  # connect attempts every 0.2 ms: well below the times measured
TIMEOUT_S = 15.0
GO_DEFAULT = "/work/shared/peer/katsubushi"


def first_id(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"get id\r\n")
            reply = b""
            while b"\r\n" not in reply or (reply.startswith(b"VALUE") and not reply.endswith(b"END\r\n")):
                chunk = s.recv(256)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"VALUE")
    except OSError:
        return False


def one_start(argv, port):
    """Returns (seconds to listen, seconds to first ID)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listen = None
        while time.monotonic() - started < TIMEOUT_S:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
            if listen is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    listen = time.monotonic() - started
                except OSError:
                    time.sleep(POLL_S)
                    continue
            if first_id(port):
                return listen, time.monotonic() - started
            time.sleep(POLL_S)
        raise RuntimeError(f"{argv[0]} gave no ID within {TIMEOUT_S} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(servers, extra, starts):
    times = {name: ([], []) for name in servers}
    for _ in range(starts):
        for name, binary in servers.items():  # alternate, so drift hits both alike
            port = free_port()
            listen, first = one_start([binary, f"-port={port}", "-log-level=error", *extra], port)
            times[name][0].append(listen)
            times[name][1].append(first)
    return times


def report(title, times):
    print(title)
    for name, (listen, first) in times.items():
        print(f"  {name:14} listen median {statistics.median(listen) * 1000:7.1f} ms "
              f"(min {min(listen) * 1000:6.1f}, max {max(listen) * 1000:7.1f})   "
              f"first ID median {statistics.median(first) * 1000:7.1f} ms "
              f"(min {min(first) * 1000:6.1f}, max {max(first) * 1000:7.1f})   n={len(listen)}")
    if "go-katsubushi" in times and "katsubushi-cpp" in times:
        ours, go = times["katsubushi-cpp"], times["go-katsubushi"]
        print(f"  ratio cpp/go   listen {statistics.median(ours[0]) / statistics.median(go[0]):.3f}   "
              f"first ID {statistics.median(ours[1]) / statistics.median(go[1]):.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--redis-starts", type=int, default=3, help="0 skips the -redis runs")
    ap.add_argument("--go", default=GO_DEFAULT)
    args = ap.parse_args()
    servers = {"katsubushi-cpp": os.path.join(os.path.abspath(args.build), "cmd/katsubushi/katsubushi")}
    if os.access(args.go, os.X_OK):
        servers["go-katsubushi"] = args.go
    else:
        print(f"go-katsubushi not found at {args.go}: its rows are skipped")

    report(f"static -worker-id, {args.starts} starts each:", measure(servers, ["-worker-id=1"], args.starts))

    if args.redis_starts > 0 and shutil.which("redis-server"):
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            wait_port(port)
            # One namespace per server; each start finds the previous one's id
            # released (SIGTERM), so every start is a full discovery.
            times = {}
            for name, binary in servers.items():
                times.update(measure({name: binary}, [f"-redis=redis://127.0.0.1:{port}/0?ns=start-{name}"],
                                     args.redis_starts))
            report(f"-redis (raus discovery included), {args.redis_starts} starts each:", times)
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
