#!/usr/bin/python3
"""Side-by-side gRPC unary benchmark (issue 15): katsubushi-cpp against
go-katsubushi, optionally with a baseline build of katsubushi-cpp, in one run.

Each server runs pinned to CPU 0 (ours with -threads=1), the load generator
pinned to CPU 1. Loads, each against every server:
  - h2load (nghttp2-client) posting an empty gRPC message frame to
    /katsubushi.Generator/Fetch, 1 connection x 50 streams and
    50 connections x 1 stream;
  - katsubushi-grpc-bench (grpc++ client) for the same two shapes, and
    FetchMulti n=100 over 1 connection x 50 streams.
Rounds are interleaved (shape, then round, then every server, the server order
rotating each round) so the drift of this shared machine hits all servers
alike; each figure is the median over the rounds. Server CPU per call is
utime+stime from /proc/PID/stat around a run divided by the calls the server
completed in it. h2load cannot see gRPC trailers: a call that fails with a
grpc-status still counts as a 2xx, but carries no message, so each h2load run
is checked to have received a message's worth of DATA per call. The client
counts gRPC errors itself; both runs must have none. The number of TCP
connections to the server is checked mid-run against the shape.

Usage: bench/compare_grpc.py [--build build] [--server PATH] [--go PATH] [--baseline PATH]
                             [--rounds 3] [--duration 6] [--only TEXT]
"""

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, cpu_seconds, free_port, go_katsubushi, stop_process, wait_port

Shape = collections.namedtuple("Shape", "name tool connections streams n")
SHAPES = [
    Shape("h2load Fetch, 1 conn x 50 streams", "h2load", 1, 50, 0),
    Shape("h2load Fetch, 50 conn x 1 stream", "h2load", 50, 1, 0),
    Shape("grpc-bench Fetch, 1 conn x 50 streams", "client", 1, 50, 0),
    Shape("grpc-bench Fetch, 50 conn x 1 stream", "client", 50, 1, 0),
    Shape("grpc-bench FetchMulti n=100, 1 conn x 50 streams", "client", 1, 50, 100),
]
FETCH_PATH = "/katsubushi.Generator/Fetch"
EMPTY_MESSAGE_FRAME = b"\0\0\0\0\0"  # not compressed, length 0: an empty FetchRequest
# A FetchResponse frame is 5 bytes of header and a tagged varint ID; an error
# (trailers-only response) has no DATA at all.
MIN_DATA_BYTES_PER_CALL = 7
CLIENT_WARMUP_S = 1.0
STOP_TIMEOUT_S = 10


class Server:
    """A server pinned to CPU 0, started and stopped by PID."""

    def __init__(self, name, argv, port, tmp):
        self.name, self.port = name, port
        self.log_path = os.path.join(tmp, f"{name}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(port, proc=self.proc)
        except RuntimeError as e:
            self.stop()
            with open(self.log_path, errors="replace") as f:
                sys.exit(f"{name} did not start ({e}): {' '.join(argv)}\n{f.read()[-2000:]}")

    def stop(self):
        stop_process(self.proc, STOP_TIMEOUT_S)


def connections_to(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return len(out.splitlines())


def run_pinned(argv, timeout, look_after, port):
    """Runs argv on CPU 1; counts the server's connections look_after seconds in."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["taskset", "-c", "1", *argv], stdout=out, stderr=err)
        try:
            try:
                proc.wait(timeout=look_after)
            except subprocess.TimeoutExpired:
                pass
            seen = connections_to(port) if proc.poll() is None else -1
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seen


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return float(sorted_values[min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))])


def h2load_run(shape, server, duration, body, tmp, scheme="http"):
    """One h2load run; scheme "https" speaks TLS (ALPN h2), as compare_tls.py does."""
    log = tempfile.NamedTemporaryFile(dir=tmp, suffix=".h2load.log", delete=False).name  # h2load appends
    argv = ["h2load", "-D", f"{duration:g}", "-c", str(shape.connections), "-m", str(shape.streams), "-t", "1",
            "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}",
            f"{scheme}://127.0.0.1:{server.port}{FETCH_PATH}"]
    cpu0 = cpu_seconds(server.proc.pid)
    rc, out, err, seen = run_pinned(argv, duration + 60, duration / 2, server.port)
    cpu1 = cpu_seconds(server.proc.pid)
    if rc != 0:
        raise RuntimeError(f"h2load failed against {server.name} ({rc}): {err or out}")
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out)
    status = re.search(r"status codes: (\d+) 2xx", out)
    data = re.search(r"traffic: .*\((\d+)\) data", out)
    if not (req and status and data):
        raise RuntimeError(f"unexpected h2load output against {server.name}:\n{out}")
    succeeded, failed, errored, timed_out = (int(req.group(i)) for i in (4, 5, 6, 7))
    ok_2xx, data_bytes = int(status.group(1)), int(data.group(1))
    with open(log) as f:
        latencies = sorted(int(line.split("\t")[2]) for line in f if line.strip())
    os.unlink(log)
    problems = []
    if failed or errored or timed_out:
        problems.append(f"{failed} failed, {errored} errored, {timed_out} timed out")
    if ok_2xx != succeeded:
        problems.append(f"{succeeded - ok_2xx} of {succeeded} not 2xx")
    if succeeded == 0 or data_bytes < MIN_DATA_BYTES_PER_CALL * succeeded:
        problems.append(f"{data_bytes} DATA bytes for {succeeded} calls: calls answered without a message "
                        f"(a grpc-status error)")
    if problems:
        raise RuntimeError(f"h2load against {server.name}: " + "; ".join(problems))
    return {"calls_per_s": succeeded / duration, "ids_per_s": succeeded / duration,
            "cpu_us_per_call": (cpu1 - cpu0) / succeeded * 1e6, "p99_us": percentile(latencies, 99),
            "connections_seen": seen}


def client_run(shape, server, duration, bench):
    argv = [bench, f"--target=127.0.0.1:{server.port}", f"--concurrency={shape.connections * shape.streams}",
            f"--channels={shape.connections}", f"--duration={duration}", f"--warmup={CLIENT_WARMUP_S}",
            f"--n={shape.n}"]
    cpu0 = cpu_seconds(server.proc.pid)
    rc, out, err, seen = run_pinned(argv, duration + CLIENT_WARMUP_S + 60, CLIENT_WARMUP_S + duration / 2,
                                    server.port)
    cpu1 = cpu_seconds(server.proc.pid)
    if rc != 0:
        raise RuntimeError(f"katsubushi-grpc-bench failed against {server.name} ({rc}): {err or out}")
    r = json.loads(out)
    if r["errors"] or not r["calls"]:
        raise RuntimeError(f"katsubushi-grpc-bench against {server.name}: {r['errors']} gRPC errors "
                           f"in {r['calls']} calls")
    # CPU is read around warm-up and measurement alike: divide by every call.
    return {"calls_per_s": r["calls_per_second"], "ids_per_s": r["ids_per_second"],
            "cpu_us_per_call": (cpu1 - cpu0) / r["all_calls"] * 1e6, "p99_us": r["p99_us"],
            "connections_seen": seen}


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def print_table(shape, servers, results):
    multi = shape.n > 0
    cols = ["calls/s"] + (["IDs/s"] if multi else []) + ["server CPU µs/call", "p99 µs"]
    keys = ["calls_per_s"] + (["ids_per_s"] if multi else []) + ["cpu_us_per_call", "p99_us"]
    print(f"\n### {shape.name}\n")
    print("| server | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for s in servers:
        r = results[(shape.name, s)]
        cells = [f"{r[k]:,.0f}" if k != "cpu_us_per_call" else f"{r[k]:.1f}" for k in keys]
        print(f"| {s} | " + " | ".join(cells) + " |")
    pairs = [("katsubushi-cpp", "go-katsubushi"), ("baseline", "go-katsubushi"), ("katsubushi-cpp", "baseline")]
    for a, b in pairs:
        if a in servers and b in servers:
            ra, rb = results[(shape.name, a)], results[(shape.name, b)]
            print(f"| ratio {a} / {b} | " + " | ".join(ratio(ra[k], rb[k]) for k in keys) + " |")


def load_average():
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build directory holding bench/katsubushi-grpc-bench (default: %(default)s)")
    ap.add_argument("--server", default="", help="our server (default: BUILD/cmd/katsubushi/katsubushi)")
    ap.add_argument("--go", default=go_katsubushi(),
                    help="go-katsubushi's binary; its rows are skipped when absent (default: %(default)s)")
    ap.add_argument("--baseline", default="", help="another build of katsubushi-cpp to run alongside")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are shown")
    ap.add_argument("--duration", type=float, default=6, help="seconds per run")
    ap.add_argument("--only", default="", help="run only the shapes whose name contains this")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    server_bin = os.path.abspath(args.server or os.path.join(build, "cmd", "katsubushi", "katsubushi"))
    bench = os.path.join(build, "bench", "katsubushi-grpc-bench")
    shapes = [s for s in SHAPES if args.only in s.name]
    if not shapes:
        sys.exit(f"no shape matches --only={args.only!r}")
    for tool, hint in (("taskset", "util-linux"), ("ss", "iproute2")):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian package {hint})")
    if any(s.tool == "h2load" for s in shapes) and not shutil.which("h2load"):
        sys.exit("h2load not found: install nghttp2-client (scripts/install-deps does)")
    if any(s.tool == "client" for s in shapes) and not os.access(bench, os.X_OK):
        sys.exit(f"{bench} not found: cmake --build {build} --target katsubushi-grpc-bench")
    for path, what in ((server_bin, "--server"), (args.baseline, "--baseline")):
        if path and not os.access(path, os.X_OK):
            sys.exit(f"{what} {path}: not an executable")

    notes = []
    wanted = [("katsubushi-cpp", [server_bin, "-worker-id=1", "-threads=1"])]
    if args.go and os.access(args.go, os.X_OK):
        wanted.append(("go-katsubushi", [os.path.abspath(args.go), "-worker-id=2"]))
    else:
        notes.append(f"go-katsubushi not found at {args.go or '../shared/peer/katsubushi'}: its rows are skipped")
    if args.baseline:
        wanted.append(("baseline", [os.path.abspath(args.baseline), "-worker-id=3", "-threads=1"]))

    print(f"# gRPC unary, side by side ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    print(f"{args.rounds} interleaved rounds x {args.duration:g} s (client runs +{CLIENT_WARMUP_S:g} s warm-up), "
          "medians; servers on CPU 0, load on CPU 1.")
    print(f"At start: {load_average()}")
    for name, argv in wanted:
        print(f"- {name}: {argv[0]}")
    sys.stdout.flush()

    tmp = tempfile.mkdtemp(prefix="katsubushi-grpc-bench-")
    body = os.path.join(tmp, "empty-fetch-request.grpc")
    with open(body, "wb") as f:
        f.write(EMPTY_MESSAGE_FRAME)
    servers = []
    samples = collections.defaultdict(list)
    try:
        for name, argv in wanted:
            port = free_port()
            servers.append(Server(name, [*argv, "-port=0", f"-grpc-port={port}", "-log-level=error"], port, tmp))
        time.sleep(0.5)
        for shape in shapes:
            for round_ in range(args.rounds):
                k = round_ % len(servers)
                for server in servers[k:] + servers[:k]:
                    print(f"  {shape.name} / {server.name} / round {round_ + 1}", file=sys.stderr, flush=True)
                    if shape.tool == "h2load":
                        r = h2load_run(shape, server, args.duration, body, tmp)
                    else:
                        r = client_run(shape, server, args.duration, bench)
                    if r["connections_seen"] != shape.connections:
                        notes.append(f"{shape.name} / {server.name} / round {round_ + 1}: "
                                     f"{r['connections_seen']} connections seen mid-run, not {shape.connections}")
                    samples[(shape.name, server.name)].append(r)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    names = [s.name for s in servers]
    results = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in samples.items()}
    for shape in shapes:
        print_table(shape, names, results)
    print(f"\nAt end: {load_average()}")
    for note in notes:
        print(f"Note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
