#!/usr/bin/python3
"""Side-by-side TLS benchmark (issue 22): katsubushi-cpp's TLS fronts against
Debian's memcached -Z and nginx with TLS, in one run.

Every server runs pinned to CPU 0 with one thread (nginx: one process, no
master); every load runs pinned to CPU 1. Each shape is run against all its
servers in the same invocation, alternating and rotating the order each
round, so the drift of this shared machine hits all alike; the best round
counts. Server CPU per request is utime+stime from /proc/PID/stat around a
run divided by every request the server answered in it (warm-up included);
client CPU is the load generator's own rusage.

  1. memcached text `get` over TLS, katsubushi-loadgen --tls: ours against
     memcached -Z -t 1 serving the value 1234567890123456789 stored under the
     key `id` (stored over TLS first), 1 connection and 50 connections x 8
     pipelined; ours in plaintext too, for the cost of TLS.
  2. HTTPS: wrk, 50 keep-alive connections, on https://.../id against nginx
     with TLS and `return 200` (keepalive_requests raised so that neither
     server makes wrk reconnect mid-run); both in plaintext too.
  3. Handshakes: new connections/s and server CPU per handshake, each
     connection doing connect, full handshake, one request, close:
     katsubushi-loadgen --tls --new-connections against ours and memcached
     -Z (ours in plaintext for the TCP part), and wrk -H 'Connection: close'
     against ours and nginx over HTTPS. wrk offers the previous session again
     (it keeps it across SSL_clear), so a server that allows resumption is
     measured resuming; whether each does is probed and printed.
  4. gRPC over TLS with h2load (an empty Fetch message, as compare_grpc.py)
     against the plaintext figure; skipped with the reason when the server
     refuses -tls=grpc.

Certificates are made fresh in a temp dir: ECDSA P-256 (what a deployment
would likely use), and with --rsa the handshakes again with RSA-2048. Then
the RSS of 5,000 idle TLS connections (each did one get), ours against
memcached -Z.

Usage: bench/compare_tls.py [--build build] [--server PATH] [--duration 5] [--warmup 1]
                            [--rounds 2] [--only TEXT] [--rsa] [--no-rss]
"""

import argparse
import json
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, cpu_seconds, free_port, stop_process, wait_port
from compare_grpc import EMPTY_MESSAGE_FRAME, SHAPES as GRPC_SHAPES, h2load_run
from compare_memcached import KEY, STORED_VALUE, rss_kib

IDLE_CONNECTIONS = 5000
PIPELINED_SHAPES = [("1 conn", 1, 1), ("50 conn x 8 pipelined", 50, 8)]
WRK_CONNECTIONS = 50
# Connections opened at once in the handshake runs: enough to keep one server
# core busy while the client does its half of each handshake.
HANDSHAKE_CONNECTIONS = 8
STOP_TIMEOUT_S = 10
# Best-of rounds on the shared 2-core machine still differ by a few percent
# from run to run; a shortfall smaller than this is called a tie, not hidden.
TIE_TOLERANCE = 0.03
HTTP_BODY = "1574103357381947392"

NGINX_CONF = """
worker_processes 1;
master_process off;  # one process: its CPU time is all in /proc/PID/stat
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  client_body_temp_path {dir};
  proxy_temp_path {dir};
  fastcgi_temp_path {dir};
  uwsgi_temp_path {dir};
  scgi_temp_path {dir};
  # nginx closes a keep-alive connection after 1000 requests by default,
  # which would add a handshake per 1000 requests; ours has no such limit.
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    listen 127.0.0.1:{plain_port};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      default_type text/plain;
      return 200 "{body}";
    }}
  }}
}}
"""


class ServerExited(RuntimeError):
    pass


class Server:
    """A server pinned to CPU 0, started and stopped by PID. `ports` maps a
    role (memcache, http, https, grpc) to the port it serves it on."""

    def __init__(self, name, argv, ports, tmp):
        self.name, self.ports = name, ports
        self.log_path = os.path.join(tmp, re.sub(r"\W+", "-", name) + ".log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=log, stderr=subprocess.STDOUT)
        try:
            for port in ports.values():
                wait_port(port, proc=self.proc)
        except RuntimeError as e:
            self.stop()
            with open(self.log_path, errors="replace") as f:
                raise ServerExited(f"{name} did not start ({e}):\n  {' '.join(argv)}\n  "
                                   + f.read()[-2000:].strip().replace("\n", "\n  ")) from None

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        stop_process(self.proc, STOP_TIMEOUT_S)


def make_certificate(tmp, kind):
    """A self-signed certificate for 127.0.0.1 and its key; readable by
    memcached's user too (it may drop to `nobody`)."""
    cert, key = os.path.join(tmp, f"{kind}.crt"), os.path.join(tmp, f"{kind}.key")
    newkey = {"ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "rsa": ["-newkey", "rsa:2048"]}[kind]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)
    return cert, key


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def exchange(sock, request, done):
    sock.sendall(request)
    reply = b""
    while not done(reply):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


MEMCACHE_GET = (b"get %s\r\n" % KEY.encode(), lambda r: r.endswith(b"END\r\n"))


def http_response_done(r):
    head, sep, body = r.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(sep) and length is not None and len(body) >= int(length.group(1))


HTTP_GET = (b"GET /id HTTP/1.1\r\nHost: localhost\r\n\r\n", http_response_done)


def probe(port, request):
    """(TLS version, cipher, resumed on a second connection offering the
    first one's session), from Python's ssl module."""
    ctx = client_context()
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as s:
        exchange(s, *request)  # a TLS 1.3 ticket arrives after the handshake
        version, cipher, session = s.version(), s.cipher()[0], s.session
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), session=session) as s:
        exchange(s, *request)
        resumed = s.session_reused
    return version, cipher, resumed


def store_value(port):
    with client_context().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as s:
        reply = exchange(s, b"set %s 0 0 %d\r\n%s\r\n" % (KEY.encode(), len(STORED_VALUE), STORED_VALUE),
                         lambda r: r.endswith(b"\r\n"))
    if reply != b"STORED\r\n":
        raise RuntimeError(f"memcached -Z answered {reply!r} to the set")


def run_on_cpu1(server, argv, timeout):
    """Runs argv on CPU 1; returns (stdout, wall s, server CPU s, client CPU s)."""
    cpu0, ru0, t0 = cpu_seconds(server.pid), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.run(["taskset", "-c", "1", *argv], capture_output=True, text=True, timeout=timeout)
    t1, ru1, cpu1 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN), cpu_seconds(server.pid)
    if proc.returncode != 0:
        raise RuntimeError(f"{os.path.basename(argv[0])} against {server.name} failed ({proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return proc.stdout, t1 - t0, cpu1 - cpu0, client


def loadgen_run(loadgen, server, args, duration, warmup):
    argv = [loadgen, f"--port={server.ports['memcache']}", f"--key={KEY}", f"--duration={duration}",
            f"--warmup={warmup}", *args]
    out, wall, cpu, client = run_on_cpu1(server, argv, duration + warmup + 120)
    r = json.loads(out)
    if r["errors"] or not r["requests"]:
        raise RuntimeError(f"loadgen against {server.name}: {r['errors']} errors in {r['requests']} requests")
    return {"rps": r["requests_per_second"], "cpu_us": cpu / r["all_requests"] * 1e6, "p50": r["p50_us"],
            "p99": r["p99_us"], "server_busy": cpu / wall, "client_busy": client / wall}


def to_us(text):
    value, unit = float(re.match(r"([\d.]+)", text).group(1)), re.sub(r"[\d.]", "", text)
    return value * {"us": 1, "ms": 1000, "s": 1e6}[unit]


def wrk_run(server, url, duration, connections, extra=()):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", *extra, url]
    out, wall, cpu, client = run_on_cpu1(server, argv, duration + 60)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if non2xx or not total:
        raise RuntimeError(f"wrk against {server.name}: {non2xx.group(1) if non2xx else 0} non-2xx of {total}")
    return {"rps": rps, "cpu_us": cpu / total * 1e6, "p50": to_us(lat["50"]), "p99": to_us(lat["99"]),
            "server_busy": cpu / wall, "client_busy": client / wall,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def best_of(rounds, runs):
    """runs: [(row name, server, thunk)]. Alternates the runs, the order
    rotated each round; keeps each row's round with the most requests/s."""
    best = {}
    for round_ in range(rounds):
        k = round_ % len(runs)
        for name, server, thunk in runs[k:] + runs[:k]:
            print(f"  {name} / round {round_ + 1}", file=sys.stderr, flush=True)
            r = thunk()
            if name not in best or r["rps"] > best[name]["rps"]:
                best[name] = r
    return best


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def table(title, rows, results, columns, ratios=()):
    """columns: [(header, key, format)]; ratios: [(label, row a, row b)]."""
    print(f"\n### {title}\n")
    print("| | " + " | ".join(h for h, _, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for row in rows:
        r = results[row]
        print(f"| {row} | " + " | ".join(fmt.format(r[k]) for _, k, fmt in columns) + " |")
    for label, a, b in ratios:
        print(f"| *{label}* | " + " | ".join(ratio(results[a][k], results[b][k]) for _, k, _ in columns) + " |")
    sys.stdout.flush()


# "busy" is a process's CPU time over the run's wall time: which side was the
# limit (near 100%), or whether other work on the shared CPUs starved it
# (well under, with req/s down while CPU per request holds).
THROUGHPUT_COLUMNS = [("req/s", "rps", "{:,.0f}"), ("server CPU µs/req", "cpu_us", "{:.2f}"),
                      ("server busy", "server_busy", "{:.0%}"), ("client busy", "client_busy", "{:.0%}"),
                      ("p50 µs", "p50", "{:.0f}"), ("p99 µs", "p99", "{:.0f}")]
HANDSHAKE_COLUMNS = [("new conn/s", "rps", "{:,.0f}"), ("server CPU µs/conn", "cpu_us", "{:.0f}"),
                     ("server busy", "server_busy", "{:.0%}"), ("client busy", "client_busy", "{:.0%}"),
                     ("p50 µs", "p50", "{:.0f}"), ("p99 µs", "p99", "{:.0f}")]


class Bench:
    def __init__(self, args, build, server_bin, tmp):
        self.args, self.build, self.server_bin, self.tmp = args, build, server_bin, tmp
        self.loadgen = os.path.join(build, "bench", "katsubushi-loadgen")
        self.servers = []
        self.summary = []  # (what, ours / theirs req/s, CPU ratio, goal met or None)

    def start(self, name, argv, ports):
        server = Server(name, argv, ports, self.tmp)
        self.servers.append(server)
        return server

    def stop_all(self):
        for s in self.servers:
            s.stop()
        self.servers = []

    def ours(self, name, worker_id, tls, cert=None, memcache=True, http=True, extra=()):
        ports = {}
        argv = [self.server_bin, f"-worker-id={worker_id}", "-threads=1", "-log-level=error", *extra]
        if memcache:
            ports["memcache"] = free_port()
        argv.append(f"-port={ports.get('memcache', 0)}")
        if http:
            ports["https" if tls else "http"] = free_port()
            argv.append(f"-http-port={ports['https' if tls else 'http']}")
        if tls:
            argv += [f"-tls={tls}", f"-tls-cert-file={cert[0]}", f"-tls-key-file={cert[1]}"]
        return self.start(name, argv, ports)

    def start_tls_set(self, kind, cert, with_plain):
        """Ours with TLS, memcached -Z and nginx (TLS and plaintext ports)
        with this certificate; ours in plaintext too when with_plain."""
        s = {"ours": self.ours(f"katsubushi TLS {kind}", 1, "memcache,http", cert)}
        mc_port = free_port()
        s["memcached"] = self.start(
            f"memcached -Z {kind}",
            ["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-t", "1",
             "-c", str(IDLE_CONNECTIONS + 1024), "-Z", "-o", f"ssl_chain_cert={cert[0]},ssl_key={cert[1]}"],
            {"memcache": mc_port})
        store_value(mc_port)
        tls_port, plain_port = free_port(), free_port()
        conf = os.path.join(self.tmp, f"nginx-{kind}.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.tmp, tls_port=tls_port, plain_port=plain_port, cert=cert[0],
                                      key=cert[1], body=HTTP_BODY, connections=IDLE_CONNECTIONS + 1024))
        s["nginx"] = self.start(f"nginx TLS {kind}", ["nginx", "-c", conf, "-p", self.tmp],
                                {"https": tls_port, "http": plain_port})
        if with_plain:
            s["plain"] = self.ours("katsubushi plaintext", 2, "")
        time.sleep(0.5)
        for name, port, request in (("ours", s["ours"].ports["memcache"], MEMCACHE_GET),
                                    ("memcached", mc_port, MEMCACHE_GET),
                                    ("ours https", s["ours"].ports["https"], HTTP_GET),
                                    ("nginx https", tls_port, HTTP_GET)):
            version, cipher, resumed = probe(port, request)
            print(f"- {name} ({kind}): {version} {cipher}, session resumption "
                  f"{'accepted' if resumed else 'refused'}")
        sys.stdout.flush()
        return s

    # 1
    def memcache_throughput(self, s):
        a = self.args
        for shape, conns, pipeline in PIPELINED_SHAPES:
            args = [f"--connections={conns}", f"--pipeline={pipeline}"]
            rows = {"katsubushi TLS": (s["ours"], ["--tls", *args]),
                    "memcached -Z": (s["memcached"], ["--tls", *args]),
                    "katsubushi plaintext": (s["plain"], args)}
            results = best_of(a.rounds, [
                (row, server, lambda server=server, argv=argv: loadgen_run(self.loadgen, server, argv,
                                                                           a.duration, a.warmup))
                for row, (server, argv) in rows.items()])
            table(f"memcached text get over TLS, {shape}", list(rows), results, THROUGHPUT_COLUMNS,
                  [("katsubushi TLS / memcached -Z", "katsubushi TLS", "memcached -Z"),
                   ("katsubushi TLS / plaintext", "katsubushi TLS", "katsubushi plaintext")])
            self.add_summary(f"memcached get, {shape}: ours TLS / memcached -Z", results, "katsubushi TLS",
                             "memcached -Z", goal=True)
            self.add_summary(f"memcached get, {shape}: ours TLS / ours plaintext", results, "katsubushi TLS",
                             "katsubushi plaintext")

    # 2
    def https_throughput(self, s):
        a = self.args
        rows = {"katsubushi https /id": (s["ours"], f"https://127.0.0.1:{s['ours'].ports['https']}/id"),
                "nginx https return 200": (s["nginx"], f"https://127.0.0.1:{s['nginx'].ports['https']}/"),
                "katsubushi http /id": (s["plain"], f"http://127.0.0.1:{s['plain'].ports['http']}/id"),
                "nginx http return 200": (s["nginx"], f"http://127.0.0.1:{s['nginx'].ports['http']}/")}
        results = best_of(a.rounds, [
            (row, server, lambda server=server, url=url: wrk_run(server, url, a.duration, WRK_CONNECTIONS))
            for row, (server, url) in rows.items()])
        table(f"HTTP GET, wrk {WRK_CONNECTIONS} keep-alive connections", list(rows), results, THROUGHPUT_COLUMNS,
              [("katsubushi / nginx, https", "katsubushi https /id", "nginx https return 200"),
               ("katsubushi / nginx, http", "katsubushi http /id", "nginx http return 200"),
               ("katsubushi https / http", "katsubushi https /id", "katsubushi http /id")])
        self.add_summary("HTTPS /id: ours / nginx return 200", results, "katsubushi https /id",
                         "nginx https return 200", goal=True)

    # 3
    def handshakes(self, s, kind):
        a = self.args
        args = ["--new-connections", f"--connections={HANDSHAKE_CONNECTIONS}"]
        rows = {"katsubushi TLS": (s["ours"], ["--tls", *args]),
                "memcached -Z": (s["memcached"], ["--tls", *args])}
        if "plain" in s:
            rows["katsubushi plaintext (TCP only)"] = (s["plain"], args)
        results = best_of(a.rounds, [
            (row, server, lambda server=server, argv=argv: loadgen_run(self.loadgen, server, argv,
                                                                       a.duration, a.warmup))
            for row, (server, argv) in rows.items()])
        table(f"Handshakes ({kind}), memcached protocol: connect, full handshake, get, close; "
              f"{HANDSHAKE_CONNECTIONS} at once", list(rows), results, HANDSHAKE_COLUMNS,
              [("katsubushi / memcached -Z", "katsubushi TLS", "memcached -Z")])
        self.per_core(kind, "memcached protocol", results, ["katsubushi TLS", "memcached -Z"])
        self.add_summary(f"handshakes {kind}, memcached protocol: ours / memcached -Z", results,
                         "katsubushi TLS", "memcached -Z")

        close = ["-H", "Connection: close"]
        rows = {"katsubushi https /id": (s["ours"], f"https://127.0.0.1:{s['ours'].ports['https']}/id"),
                "nginx https return 200": (s["nginx"], f"https://127.0.0.1:{s['nginx'].ports['https']}/")}
        results = best_of(a.rounds, [
            (row, server, lambda server=server, url=url: wrk_run(server, url, a.duration, HANDSHAKE_CONNECTIONS,
                                                                 close))
            for row, (server, url) in rows.items()])
        table(f"Handshakes ({kind}), HTTPS: wrk -H 'Connection: close', {HANDSHAKE_CONNECTIONS} connections",
              list(rows), results, HANDSHAKE_COLUMNS,
              [("katsubushi / nginx", "katsubushi https /id", "nginx https return 200")])
        self.per_core(kind, "HTTPS, wrk (resumption as probed above)", results, list(rows))
        self.add_summary(f"handshakes {kind}, HTTPS Connection: close: ours / nginx", results,
                         "katsubushi https /id", "nginx https return 200")

    def per_core(self, kind, what, results, rows):
        print(f"\nNew connections per second per server core ({kind}, {what}), 1e6 / server CPU µs per "
              "connection: " + ", ".join(f"{row} {1e6 / results[row]['cpu_us']:,.0f}" for row in rows))

    # 4
    def grpc(self, cert):
        a = self.args
        tls_port = free_port()
        try:
            tls = self.start("katsubushi gRPC TLS",
                             [self.server_bin, "-worker-id=5", "-threads=1", "-port=0", f"-grpc-port={tls_port}",
                              "-tls=grpc", f"-tls-cert-file={cert[0]}", f"-tls-key-file={cert[1]}",
                              "-log-level=error"], {"grpc": tls_port})
        except ServerExited as e:
            print(f"\n### gRPC over TLS\n\nSkipped: the server does not serve gRPC over TLS here. {e}")
            return
        plain_port = free_port()
        plain = self.start("katsubushi gRPC plaintext",
                           [self.server_bin, "-worker-id=6", "-threads=1", "-port=0", f"-grpc-port={plain_port}",
                            "-log-level=error"], {"grpc": plain_port})
        for server in (tls, plain):
            server.port = server.ports["grpc"]  # what compare_grpc.h2load_run reads
        body = os.path.join(self.tmp, "empty-fetch-request.grpc")
        with open(body, "wb") as f:
            f.write(EMPTY_MESSAGE_FRAME)
        for shape in [s for s in GRPC_SHAPES if s.tool == "h2load"]:
            rows = {"gRPC TLS": (tls, "https"), "gRPC plaintext": (plain, "http")}

            def run(server, scheme, shape=shape):
                r = h2load_run(shape, server, a.duration, body, self.tmp, scheme)
                return {"rps": r["calls_per_s"], "cpu_us": r["cpu_us_per_call"], "p99": r["p99_us"]}

            results = best_of(a.rounds, [(row, server, lambda server=server, scheme=scheme: run(server, scheme))
                                         for row, (server, scheme) in rows.items()])
            table(f"gRPC Fetch, {shape.name}", list(rows), results,
                  [("calls/s", "rps", "{:,.0f}"), ("server CPU µs/call", "cpu_us", "{:.2f}"),
                   ("p99 µs", "p99", "{:.0f}")],
                  [("TLS / plaintext", "gRPC TLS", "gRPC plaintext")])
            self.add_summary(f"gRPC {shape.name}: TLS / plaintext", results, "gRPC TLS", "gRPC plaintext")

    def idle_rss(self, s):
        print(f"\n### RSS with {IDLE_CONNECTIONS:,} idle TLS connections (each did one get)\n")
        print("| server | before | holding them | per connection |")
        print("|---|---:|---:|---:|")
        for name, server, tls in (("katsubushi TLS", s["ours"], ["--tls"]),
                                  ("memcached -Z", s["memcached"], ["--tls"]),
                                  ("katsubushi plaintext", s["plain"], [])):
            before = rss_kib(server.pid)
            holder = subprocess.Popen(["taskset", "-c", "1", self.loadgen, f"--port={server.ports['memcache']}",
                                       f"--key={KEY}", f"--idle-connections={IDLE_CONNECTIONS}", *tls],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                line = holder.stdout.readline()
                if not line.startswith("ready"):
                    raise RuntimeError(f"idle holder failed against {server.name}: {line!r}")
                time.sleep(0.5)
                held = rss_kib(server.pid)
            finally:
                holder.stdin.close()
                holder.wait(timeout=60)
            print(f"| {name} | {before / 1024:.1f} MiB | {held / 1024:.1f} MiB | "
                  f"{(held - before) / IDLE_CONNECTIONS:.1f} KiB |")
        sys.stdout.flush()

    def add_summary(self, what, results, a, b, goal=False):
        ra, rb = results[a], results[b]
        self.summary.append((what, ra["rps"] / rb["rps"], ra["cpu_us"] / rb["cpu_us"],
                             (ra["rps"] >= rb["rps"]) if goal else None))

    def print_summary(self):
        print("\n### Ratios\n")
        print("| comparison | req/s ratio | server CPU/req ratio | goal: req/s ≥ theirs |")
        print("|---|---:|---:|---|")
        for what, rps, cpu, goal in self.summary:
            verdict = ""
            if goal is not None:
                verdict = "met" if goal else (f"not met (within {TIE_TOLERANCE:.0%}: a tie on this machine)"
                                              if rps >= 1 - TIE_TOLERANCE else "NOT met")
            print(f"| {what} | {rps:.3f} | {cpu:.2f} | {verdict} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build directory holding bench/katsubushi-loadgen (default: %(default)s)")
    ap.add_argument("--server", default="", help="our server (default: BUILD/cmd/katsubushi/katsubushi)")
    ap.add_argument("--duration", type=float, default=5, help="seconds measured per run")
    ap.add_argument("--warmup", type=float, default=1, help="loadgen warm-up seconds per run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best counts")
    ap.add_argument("--only", default="",
                    help="run only the sections whose name contains this: memcache, https, handshake, grpc, rss")
    ap.add_argument("--rsa", action="store_true", help="measure the handshakes with RSA-2048 too")
    ap.add_argument("--no-rss", action="store_true", help="skip the idle-connection RSS run")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    server_bin = os.path.abspath(args.server or os.path.join(build, "cmd", "katsubushi", "katsubushi"))
    loadgen = os.path.join(build, "bench", "katsubushi-loadgen")
    for path, hint in ((server_bin, "--server"), (loadgen, f"cmake --build {build} --target katsubushi-loadgen")):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} not found ({hint})")
    for tool, package in (("taskset", "util-linux"), ("ss", "iproute2"), ("openssl", "openssl"),
                          ("memcached", "memcached"), ("nginx", "nginx-light"), ("wrk", "wrk"),
                          ("h2load", "nghttp2-client")):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian package {package})")
    nginx_v = subprocess.run(["nginx", "-V"], capture_output=True, text=True).stderr
    if "--with-http_ssl_module" not in nginx_v:
        sys.exit("this nginx has no http_ssl_module")
    sections = [s for s in ("memcache", "https", "handshake", "grpc", "rss") if args.only in s]

    print(f"# TLS, side by side ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    print(f"{args.rounds} alternating rounds x {args.duration:g} s (loadgen +{args.warmup:g} s warm-up), the best "
          "round; servers on CPU 0 with one thread, load on CPU 1.")
    print(f"At start: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"- katsubushi: {server_bin}")
    for cmd in (["memcached", "-V"], ["nginx", "-v"], ["openssl", "version"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(f"- {(r.stdout or r.stderr).strip()}")
    print("- certificates: self-signed ECDSA P-256" + (", and RSA-2048 for the handshakes" if args.rsa else ""))
    sys.stdout.flush()

    tmp = tempfile.mkdtemp(prefix="katsubushi-tls-bench-")
    os.chmod(tmp, 0o755)  # memcached may read the key as `nobody`
    bench = Bench(args, build, server_bin, tmp)
    try:
        ecdsa = make_certificate(tmp, "ecdsa")
        if {"memcache", "https", "handshake", "rss"} & set(sections):
            s = bench.start_tls_set("ECDSA P-256", ecdsa, with_plain=True)
            if "memcache" in sections:
                bench.memcache_throughput(s)
            if "https" in sections:
                bench.https_throughput(s)
            if "handshake" in sections:
                bench.handshakes(s, "ECDSA P-256")
            if "rss" in sections and not args.no_rss:
                bench.idle_rss(s)
            bench.stop_all()
        if "handshake" in sections and args.rsa:
            s = bench.start_tls_set("RSA-2048", make_certificate(tmp, "rsa"), with_plain=False)
            bench.handshakes(s, "RSA-2048")
            bench.stop_all()
        if "grpc" in sections:
            bench.grpc(ecdsa)
            bench.stop_all()
    finally:
        bench.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    bench.print_summary()
    print(f"\nAt end: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
