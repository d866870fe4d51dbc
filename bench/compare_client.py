#!/usr/bin/python3
"""katsubushi::Client throughput and latency against one local server, over
the memcached text protocol and HTTP, with 1 and 8 client threads; the same
client against go-katsubushi side by side when its binary is present (a
ratio between the two servers as this client sees them).

The server runs pinned to CPU 0 (2 io threads), katsubushi-client-bench to
CPU 1. Each row: calls/s and p50/p99 latency from the client's side, medians
of interleaved rounds (this machine is shared; single rounds are noisy).

Usage: bench/compare_client.py [--build build] [--seconds 3] [--rounds 3] [--no-pin]
                               [--go ../shared/peer/katsubushi]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

from benchlib import free_port, go_katsubushi, wait_port


PIN = True


def pinned(cpu):
    return ["taskset", "-c", cpu] if PIN else []


def start(cmd):
    return subprocess.Popen([*pinned("0"), *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_bench(bench, address, threads, seconds, n):
    out = subprocess.run([*pinned("1"), bench, f"--server={address}", f"--threads={threads}",
                          f"--seconds={seconds}", f"--n={n}"], capture_output=True, text=True, check=False)
    fields = dict(re.findall(r"(\w+)=([\d.]+)", out.stdout))
    if not fields:
        sys.exit(f"client bench failed: {out.stderr}")
    if out.stderr:
        print(out.stderr.strip(), file=sys.stderr)
    return fields


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(root, "build"))
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are shown")
    parser.add_argument("--go", default=go_katsubushi())
    parser.add_argument("--no-pin", action="store_true",
                        help="no taskset (on a busy shared machine, pinning both sides to one CPU each "
                             "makes one-thread round trips wait for the scheduler)")
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin
    bench = os.path.join(args.build, "bench", "katsubushi-client-bench")
    server_bin = os.path.join(args.build, "cmd", "katsubushi", "katsubushi")

    servers = [("katsubushi-cpp", [server_bin, "-threads=2"])]
    if args.go and os.access(args.go, os.X_OK):
        servers.append(("go-katsubushi", [args.go]))
    procs = []
    targets = {}
    try:
        for name, cmd in servers:
            port, http_port = free_port(), free_port()
            procs.append(start([*cmd, "-worker-id=9", f"-port={port}", f"-http-port={http_port}"]))
            wait_port(port)
            wait_port(http_port)
            targets[name] = {"memcached": f"127.0.0.1:{port}", "http": f"http://127.0.0.1:{http_port}"}
        print(f"{'server':15} {'proto':9} {'threads':>7} {'calls/s':>10} {'p50 us':>8} {'p99 us':>8}"
              f"  (medians of {args.rounds} interleaved rounds)")
        results = {}
        for proto in ("memcached", "http"):
            for threads in (1, 8):
                rounds = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name in targets:
                        rounds[name].append(run_bench(bench, targets[name][proto], threads, args.seconds, 1))
                for name in targets:
                    r = {key: statistics.median(float(x[key]) for x in rounds[name])
                         for key in ("calls_per_s", "p50_us", "p99_us")}
                    r["errors"] = sum(int(x["errors"]) for x in rounds[name])
                    results[(name, proto, threads)] = r
                    print(f"{name:15} {proto:9} {threads:>7} {r['calls_per_s']:>10.0f} "
                          f"{r['p50_us']:>8.1f} {r['p99_us']:>8.1f}"
                          + (f"  errors={r['errors']}" if r["errors"] else ""), flush=True)
        if len(targets) == 2:
            print("ratio katsubushi-cpp / go-katsubushi (calls/s):")
            for proto in ("memcached", "http"):
                for threads in (1, 8):
                    a = results[("katsubushi-cpp", proto, threads)]["calls_per_s"]
                    b = results[("go-katsubushi", proto, threads)]["calls_per_s"]
                    print(f"  {proto:9} {threads} threads: {a / b:.2f}")
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
