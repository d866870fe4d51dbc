#!/usr/bin/env python3
"""The Lambda extension mode, measured on localhost against the fake Lambda
APIs (tests/e2e/fake_lambda.py) and a local redis-server:

  cold start  process start -> registered and idle in event/next -> INVOKE and
              the function's first `get id` sent together (as Lambda delivers
              INVOKE to the runtime and every extension at once) -> first ID
              received. Each run ends with SHUTDOWN, so each run leases anew.
              A Redis round trip (PING) is measured beside it: the target is
              <= 20 ms plus one round trip.
  latency     a function's sequential `get id` (pymemcache) and HTTP GET /id
              (keep-alive) during an INVOKE, p50/p99, beside the same client's
              `get` of a stored key from memcached 1.6 on the same machine.

  bench/lambda_extension.py BINARY [--runs N] [--requests N]
"""

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import time

import redis
from pymemcache.client.base import Client as Memcache

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tests", "e2e"))
from fake_lambda import FakeLambda  # noqa: E402

from benchlib import free_port, wait_port  # noqa: E402


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def start_redis():
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, port, client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def start_extension(binary, fake, redis_port, port, http_port):
    env = {"AWS_LAMBDA_RUNTIME_API": fake.api, "KATSUBUSHI_LAMBDA_EXTENSION": "1",
           "KATSUBUSHI_REDIS": f"redis://127.0.0.1:{redis_port}/0?ns=bench",
           "KATSUBUSHI_PORT": str(port), "KATSUBUSHI_HTTP_PORT": str(http_port),
           "KATSUBUSHI_THREADS": "1", "KATSUBUSHI_MIN_WORKER_ID": "1", "KATSUBUSHI_MAX_WORKER_ID": "100"}
    return subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cold_start(binary, redis_port, runs):
    ready_ms, first_id_ms = [], []
    for _ in range(runs):
        fake = FakeLambda()
        port = free_port()
        started = time.perf_counter()
        proc = start_extension(binary, fake, redis_port, port, 0)
        ext = fake.extension(timeout=10)  # waits for its first event/next: init done
        ready = time.perf_counter()
        # INVOKE to the extension and the function's request, together.
        fake.send_invoke_async(ext)
        mc = Memcache(("127.0.0.1", port), connect_timeout=2, timeout=2)
        int(mc.get("id"))
        got = time.perf_counter()
        mc.close()
        ready_ms.append((ready - started) * 1000)
        first_id_ms.append((got - started) * 1000)
        fake.send_shutdown(ext)
        proc.wait(timeout=5)
        fake.close()
    return ready_ms, first_id_ms


def memcache_latency(port, key, requests):
    mc = Memcache(("127.0.0.1", port), connect_timeout=2, timeout=2)
    for _ in range(200):
        mc.get(key)
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        value = mc.get(key)
        samples.append((time.perf_counter() - t0) * 1e6)
        assert value is not None
    mc.close()
    return samples


def http_latency(port, requests):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    samples = []
    for i in range(requests + 200):
        t0 = time.perf_counter()
        conn.request("GET", "/id")
        response = conn.getresponse()
        body = response.read()
        if i >= 200:
            samples.append((time.perf_counter() - t0) * 1e6)
        assert response.status == 200, body
    conn.close()
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()

    redis_proc, redis_port, client = start_redis()
    memcached = None
    try:
        rtt = []
        for _ in range(200):
            t0 = time.perf_counter()
            client.ping()
            rtt.append((time.perf_counter() - t0) * 1000)
        ready_ms, first_ms = cold_start(args.binary, redis_port, args.runs)
        print(f"Redis round trip (PING from Python): p50 {percentile(rtt, 50):.3f} ms")
        print(f"cold start, {args.runs} runs: process start -> extension ready (in event/next): "
              f"p50 {percentile(ready_ms, 50):.1f} ms, max {max(ready_ms):.1f} ms")
        print(f"cold start, {args.runs} runs: process start -> first ID over memcached: "
              f"p50 {percentile(first_ms, 50):.1f} ms, p90 {percentile(first_ms, 90):.1f} ms, "
              f"max {max(first_ms):.1f} ms")

        # Latency during an INVOKE, beside memcached on the same client loop,
        # in alternating rounds so that both see the same machine load.
        mc_port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        memcached = subprocess.Popen(["memcached", *user, "-p", str(mc_port), "-l", "127.0.0.1",
                                      "-t", "1", "-U", "0"])
        wait_port(mc_port)
        Memcache(("127.0.0.1", mc_port)).set("k", "1234567890123456789")
        fake = FakeLambda()
        port, http_port = free_port(), free_port()
        proc = start_extension(args.binary, fake, redis_port, port, http_port)
        ext = fake.extension(timeout=10)
        fake.send_invoke(ext)
        ours, theirs, ours_http = [], [], []
        rounds = 5
        for _ in range(rounds):
            ours += memcache_latency(port, "id", args.requests // rounds)
            theirs += memcache_latency(mc_port, "k", args.requests // rounds)
            ours_http += http_latency(http_port, args.requests // rounds // 4)
        fake.send_shutdown(ext)
        proc.wait(timeout=5)
        fake.close()
        for name, samples in (("extension get id", ours), ("memcached 1.6 get k", theirs),
                              ("extension HTTP GET /id", ours_http)):
            print(f"latency {name:24s} n={len(samples):6d}: p50 {percentile(samples, 50):7.1f} us, "
                  f"p99 {percentile(samples, 99):7.1f} us, mean {statistics.mean(samples):7.1f} us")
        print(f"ratio extension/memcached: p50 {percentile(ours, 50) / percentile(theirs, 50):.2f}, "
              f"p99 {percentile(ours, 99) / percentile(theirs, 99):.2f}")
    finally:
        if memcached is not None:
            memcached.send_signal(signal.SIGTERM)
            memcached.wait(timeout=10)
        redis_proc.send_signal(signal.SIGKILL)
        redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
