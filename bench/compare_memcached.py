#!/usr/bin/python3
"""Side-by-side benchmark: katsubushi-cpp against a real memcached 1.6.

Both servers run pinned to CPU 0 with one worker thread; the load generator
runs pinned to CPU 1. Every shape is run against both servers in the same
invocation, alternating, so the ratios compare like with like on a noisy
shared machine. memcached serves a stored 19-digit value under the key the
load generator asks for, the practical ceiling of a memcached GET.

Reported per shape and server: requests/s, IDs (values)/s, p50/p99/p999 in
microseconds, and server CPU seconds per million requests (utime+stime from
/proc/PID/stat). Then RSS idle, and RSS with 5,000 idle connections that each
did one get.

With --baseline PATH, a second katsubushi binary (e.g. one built before a
change) runs in the same rotation and the ratios against it are printed too.

Usage: bench/compare_memcached.py [--build build] [--duration 5] [--rounds 1] [--baseline PATH]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from benchlib import cpu_seconds, free_port, wait_port

SHAPES = [
    # name, loadgen args, what the issue asks of the ratio
    ("text get, 1 conn", ["--connections=1", "--pipeline=1"]),
    ("text get, 50 conn x 8 pipelined", ["--connections=50", "--pipeline=8"]),
    ("binary get, 1 conn", ["--binary", "--connections=1", "--pipeline=1"]),
    ("binary get, 50 conn x 8 pipelined", ["--binary", "--connections=50", "--pipeline=8"]),
    ("text 100-key get, 1 conn", ["--keys=100", "--connections=1", "--pipeline=1"]),
    # One request in flight is bound by the loopback round trip; with a few in
    # flight the generator's ceiling (4,096,000 IDs/s) is what limits.
    ("text 100-key get, 1 conn x 4 pipelined", ["--keys=100", "--connections=1", "--pipeline=4"]),
]
KEY = "id"
STORED_VALUE = b"1234567890123456789"  # as long as a current ID
IDLE_CONNECTIONS = 5000


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, name, argv, port):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + argv,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def katsubushi_server(name, binary):
    port = free_port()
    return Server(name, [binary, "-worker-id=1", f"-port={port}", "-threads=1", "-log-level=error"], port)


def start_servers(build, baseline):
    mc_port = free_port()
    memcached = Server("memcached", ["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(mc_port),
                                     "-U", "0", "-t", "1", "-c", str(IDLE_CONNECTIONS + 1024)], mc_port)
    with socket.create_connection(("127.0.0.1", mc_port)) as s:
        s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (KEY.encode(), len(STORED_VALUE), STORED_VALUE))
        assert s.recv(64) == b"STORED\r\n"
    servers = [memcached, katsubushi_server("katsubushi", os.path.join(build, "cmd/katsubushi/katsubushi"))]
    if baseline:
        servers.append(katsubushi_server("baseline", baseline))
    return servers


def run_load(build, server, args, duration, warmup):
    loadgen = os.path.join(build, "bench/katsubushi-loadgen")
    cpu0 = cpu_seconds(server.proc.pid)
    out = subprocess.run(["taskset", "-c", "1", loadgen, f"--port={server.port}", f"--key={KEY}",
                          f"--duration={duration}", f"--warmup={warmup}"] + args,
                         check=True, capture_output=True, text=True, timeout=duration + warmup + 60)
    cpu1 = cpu_seconds(server.proc.pid)
    result = json.loads(out.stdout)
    # CPU is read around warm-up and measurement alike, so divide by every
    # request made in both (the load generator measures only the second part).
    total_requests = result["requests"] * (duration + warmup) / duration
    result["cpu_s_per_million"] = (cpu1 - cpu0) / total_requests * 1e6 if total_requests else 0
    return result


def idle_rss(build, server):
    loadgen = os.path.join(build, "bench/katsubushi-loadgen")
    before = rss_kib(server.proc.pid)
    holder = subprocess.Popen(["taskset", "-c", "1", loadgen, f"--port={server.port}", f"--key={KEY}",
                               f"--idle-connections={IDLE_CONNECTIONS}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = holder.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError(f"idle holder failed against {server.name}: {line!r}")
    time.sleep(0.5)
    held = rss_kib(server.proc.pid)
    holder.stdin.close()
    holder.wait(timeout=30)
    return before, held


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=1, help="repeat every shape; the best round counts")
    ap.add_argument("--only", default="", help="run only the shapes whose name contains this")
    ap.add_argument("--no-rss", action="store_true", help="skip the idle-connection RSS run")
    ap.add_argument("--baseline", default="", help="another katsubushi binary to run alongside")
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    servers = start_servers(build, os.path.abspath(args.baseline) if args.baseline else "")
    time.sleep(0.5)
    fresh_rss = {s.name: rss_kib(s.proc.pid) for s in servers}
    try:
        results = {}
        shapes = [(n, s) for n, s in SHAPES if args.only in n]
        for name, shape in shapes:
            for _ in range(args.rounds):
                for server in servers:  # alternate, so drift hits both alike
                    r = run_load(build, server, shape, args.duration, args.warmup)
                    best = results.get((name, server.name))
                    if best is None or r["requests_per_second"] > best["requests_per_second"]:
                        results[(name, server.name)] = r
        rss = {} if args.no_rss else {s.name: idle_rss(build, s) for s in servers}
    finally:
        for s in servers:
            s.stop()

    print(f"{'shape':40} {'server':11} {'req/s':>10} {'IDs/s':>11} {'p50us':>7} {'p99us':>7} "
          f"{'p999us':>7} {'cpu s/M':>8}")
    for name, _ in shapes:
        for server in [s.name for s in servers]:
            r = results[(name, server)]
            print(f"{name:40} {server:11} {r['requests_per_second']:10.0f} {r['values_per_second']:11.0f} "
                  f"{r['p50_us']:7.1f} {r['p99_us']:7.1f} {r['p999_us']:7.1f} {r['cpu_s_per_million']:8.2f}")
        m, k = results[(name, "memcached")], results[(name, "katsubushi")]
        print(f"{'':40} {'ratio k/m':11} {k['requests_per_second'] / m['requests_per_second']:10.3f} "
              f"{'':11} {'':7} {k['p99_us'] / m['p99_us']:7.3f} {'':7} "
              f"{(k['cpu_s_per_million'] / m['cpu_s_per_million']) if m['cpu_s_per_million'] else 0:8.3f}")
        if args.baseline:
            b = results[(name, "baseline")]
            print(f"{'':40} {'ratio k/b':11} {k['requests_per_second'] / b['requests_per_second']:10.3f} "
                  f"{'':11} {'':7} {k['p99_us'] / b['p99_us']:7.3f} {'':7} "
                  f"{(k['cpu_s_per_million'] / b['cpu_s_per_million']) if b['cpu_s_per_million'] else 0:8.3f}")
    print()
    for server, (after_load, held) in rss.items():
        print(f"RSS {server:11} fresh {fresh_rss[server] / 1024:6.1f} MiB   after the runs "
              f"{after_load / 1024:6.1f} MiB   with {IDLE_CONNECTIONS} idle connections {held / 1024:6.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
