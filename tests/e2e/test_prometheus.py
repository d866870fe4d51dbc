"""/metrics, the alert rules and the Grafana dashboard against Debian's real
Prometheus tools (issue 21), with the server as operators run it: every front
on, a worker id leased from a real redis-server.

- /metrics, under load on every front, passes `promtool check metrics` with no
  output at all (no error, no lint warning).
- A real Prometheus (its own config and storage in a temp dir, 127.0.0.1 only,
  1 s scrapes, deploy/prometheus/katsubushi-rules.yml loaded) scrapes the
  server while every front is loaded; then every query of every panel of
  deploy/grafana/katsubushi.json, with the dashboard's variables substituted,
  must parse and return at least one finite value (one per front for the
  per-front queries), every rule must evaluate without error, and none may
  fire or be pending for this healthy server.
"""

import http.client
import json
import math
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest

from conftest import ROOT, free_port, stop_process, wait_listening
from test_redis_lease import RedisServer, wait_for
from test_shutdown import binary_get, read_binary_reply, read_until

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
RULES = os.path.join(ROOT, "deploy", "prometheus", "katsubushi-rules.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "katsubushi.json")
FRONTS = ("memcache_text", "memcache_binary", "http", "grpc")
SCRAPE_INTERVAL_S = 1
RATE_INTERVAL = "10s"  # what Grafana's $__rate_interval is for 1 s scrapes, with room

class LeasedServer:
    """katsubushi with memcached, HTTP and gRPC on, its worker id leased."""

    def __init__(self, binary, redis_url):
        self.port, self.http_port, self.grpc_port = free_port(), free_port(), free_port()
        self.proc = subprocess.Popen(
            [binary, f"-redis={redis_url}", f"-port={self.port}", f"-http-port={self.http_port}",
             f"-grpc-port={self.grpc_port}", "-threads=2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in (self.port, self.http_port, self.grpc_port):
            wait_listening(port, self.proc)
        # raus's discovery takes 3 s before the lease.
        assert wait_for(lambda: self.get("/healthz")[0] == 200, timeout=15), "no worker id leased"

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def stop(self):
        stop_process(self.proc)


@pytest.fixture(scope="module")
def server(katsubushi_bin):
    redis_server = RedisServer()
    try:
        s = LeasedServer(katsubushi_bin, redis_server.url())
        try:
            yield s
        finally:
            s.stop()
    finally:
        redis_server.stop()


class Load:
    """One client per front, taking turns on one thread until stopped."""

    def __init__(self, server, stubs):
        self.text = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.binary = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.http = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=5)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
        self.fetch = lambda: rpc.GeneratorStub(self.channel).Fetch(pb.FetchRequest(), timeout=5)
        self.rounds = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = None

    def one_round(self):
        self.text.sendall(b"get a b\r\n")
        assert read_until(self.text, b"END\r\n").startswith(b"VALUE a 0 ")
        self.binary.sendall(binary_get())
        assert struct.unpack(">H", read_binary_reply(self.binary)[6:8])[0] == 0  # status
        self.http.request("GET", "/id")
        r = self.http.getresponse()
        r.read()
        assert r.status == 200
        assert self.fetch().id > 0
        self.rounds += 1

    def run_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.one_round()

    def start(self):
        def loop():
            try:
                while not self._stop.is_set():
                    self.one_round()
                    time.sleep(0.002)  # load, not a benchmark: leave the CPUs to the rest
            except Exception as e:  # reported by stop(); a thread must not die silently
                self.errors.append(e)
        self._thread = threading.Thread(target=loop)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.text.close()
        self.binary.close()
        self.http.close()
        self.channel.close()
        assert not self.errors, self.errors


def histogram_counts(metrics_text):
    counts = {}
    for m in re.finditer(r'^katsubushi_request_duration_seconds_count\{front="(\w+)"\} (\d+)$',
                         metrics_text, re.M):
        counts[m.group(1)] = int(m.group(2))
    return counts


def test_metrics_pass_promtool_check(server, stubs):
    load = Load(server, stubs)
    try:
        load.run_for(0.3)
    finally:
        load.stop()
    status, text = server.get("/metrics")
    assert status == 200
    # What the lint covered: every front's histogram with requests in it, and
    # the lease's series.
    counts = histogram_counts(text)
    assert set(counts) == set(FRONTS)
    assert all(counts[f] > 0 for f in FRONTS), counts
    for name in ("katsubushi_lease_remaining_seconds", "katsubushi_lease_confirmation_age_seconds",
                 "katsubushi_lease_renew_failures_total"):
        assert f"\n{name} " in text, name
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
    output = check.stdout + check.stderr
    assert check.returncode == 0 and output == "", f"promtool check metrics:\n{output}"


class Prometheus:
    def __init__(self, workdir, target):
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: {SCRAPE_INTERVAL_S}s
  evaluation_interval: {SCRAPE_INTERVAL_S}s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: katsubushi
    static_configs: [{{targets: ["{target}"]}}]
""")
        self.log = open(os.path.join(workdir, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        ready = wait_for(lambda: self._ready(), timeout=15, interval=0.1)
        assert ready, f"prometheus did not start:\n{self.output()}"

    def _ready(self):
        assert self.proc.poll() is None, f"prometheus exited:\n{self.output()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # a bad query is a 400 with the error in JSON
            return json.load(e)

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def dashboard_queries(variables):
    """Every panel target's expression, with the dashboard variables substituted."""
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    declared = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= declared
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(f"${name}", value)
            assert "$" not in expr, f"{panel['title']}: variable left in {expr}"
            yield panel["title"], expr


def finite_values(result):
    return [float(r["value"][1]) for r in result if math.isfinite(float(r["value"][1]))]


def fronts_missing(expr, result):
    """The fronts a per-front query has no finite value for (gRPC has no
    connection series)."""
    if "by (front" not in expr:
        return set()
    wanted = set(FRONTS) - ({"grpc"} if "katsubushi_connections" in expr else set())
    return wanted - {r["metric"].get("front") for r in result if math.isfinite(float(r["value"][1]))}


def test_dashboard_queries_and_rules_against_prometheus(server, stubs, tmp_path):
    target = f"127.0.0.1:{server.http_port}"
    prom = Prometheus(str(tmp_path), target)
    load = Load(server, stubs)
    try:
        load.start()
        # Enough scrapes for rates over RATE_INTERVAL and a few rule evaluations.
        assert wait_for(lambda: scraped_samples(prom) >= 5, timeout=20, interval=0.5), \
            f"prometheus did not scrape {target}:\n{prom.output()}"
        variables = {"job": "katsubushi", "instance": re.escape(target).replace("\\", "\\\\"),
                     "__rate_interval": RATE_INTERVAL}
        failures = []
        queries = list(dashboard_queries(variables))
        for title, expr in queries:
            reply = prom.api("query", query=expr)
            if reply["status"] != "success":
                failures.append(f"{title}: {expr}: {reply.get('error')}")
                continue
            result = reply["data"]["result"]
            if finite_values(result):
                if missing := fronts_missing(expr, result):
                    failures.append(f"{title}: {expr}: no data for {sorted(missing)}")
                continue
            failures.append(f"{title}: {expr}: no data")
        assert not failures, "panel queries that failed:\n" + "\n".join(failures)
        assert len(queries) >= 20, "too few panel queries checked"

        rules = prom.api("rules")["data"]["groups"]
        loaded = [r for g in rules for r in g["rules"]]
        assert len(loaded) >= 13
        unhealthy = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
        assert not unhealthy, unhealthy
        alerts = prom.api("alerts")["data"]["alerts"]
        assert not alerts, f"alerts for a healthy server: {alerts}"
    finally:
        load.stop()
        prom.stop()
    assert load.rounds > 100


def scraped_samples(prom):
    reply = prom.api("query", query=f"count_over_time(up{{job=\"katsubushi\"}}[{RATE_INTERVAL}])")
    result = reply.get("data", {}).get("result", [])
    return int(float(result[0]["value"][1])) if result else 0
