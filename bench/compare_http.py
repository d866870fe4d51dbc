#!/usr/bin/python3
"""Side-by-side HTTP benchmark: katsubushi's /id and /ids?n=100 against an
nginx `return 200` location (the ceiling of a minimal HTTP response on this
machine), in one run.

Both servers run pinned to CPU 0 with one worker; wrk runs pinned to CPU 1
with 50 connections. Reports requests/s and latency percentiles from wrk,
and the ratio katsubushi / nginx.

Usage: bench/compare_http.py [--build build] [--duration 5] [--rounds 1]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

from benchlib import free_port, wait_port

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir};
  proxy_temp_path {dir};
  fastcgi_temp_path {dir};
  uwsgi_temp_path {dir};
  scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{
      default_type text/plain;
      return 200 "1574103357381947392";
    }}
  }}
}}
"""


def to_us(text):
    value, unit = float(re.match(r"([\d.]+)", text).group(1)), re.sub(r"[\d.]", "", text)
    return value * {"us": 1, "ms": 1000, "s": 1e6}[unit]


def wrk(url, duration):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{duration}s", "--latency", url],
                         check=True, capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": to_us(lat["50"]), "p99": to_us(lat["99"]),
            "non2xx": int(errors.group(1)) if errors else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    tmp = tempfile.mkdtemp(prefix="katsubushi-bench-")
    nginx_port, kb_port = free_port(), free_port()
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, port=nginx_port))
    procs = [
        subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", os.path.join(tmp, "nginx.conf"), "-p", tmp],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["taskset", "-c", "0", os.path.join(build, "cmd/katsubushi/katsubushi"), "-worker-id=1",
                          "-port=0", f"-http-port={kb_port}", "-threads=1", "-log-level=error"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_port(nginx_port)
        wait_port(kb_port)
        runs = [("nginx return 200", f"http://127.0.0.1:{nginx_port}/"),
                ("katsubushi /id", f"http://127.0.0.1:{kb_port}/id"),
                ("katsubushi /ids?n=100", f"http://127.0.0.1:{kb_port}/ids?n=100")]
        best = {}
        for _ in range(args.rounds):
            for name, url in runs:  # alternate, so drift hits all alike
                r = wrk(url, args.duration)
                if name not in best or r["rps"] > best[name]["rps"]:
                    best[name] = r
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)

    print(f"{'target':24} {'req/s':>10} {'p50 us':>8} {'p99 us':>8} {'non-2xx':>8}")
    for name, _ in runs:
        r = best[name]
        print(f"{name:24} {r['rps']:10.0f} {r['p50']:8.0f} {r['p99']:8.0f} {r['non2xx']:8d}")
    print(f"\n/id vs nginx: {best['katsubushi /id']['rps'] / best['nginx return 200']['rps']:.3f}")
    print(f"/ids?n=100 IDs/s: {best['katsubushi /ids?n=100']['rps'] * 100:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
