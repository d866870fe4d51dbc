"""The HTTP and gRPC fronts of the real binary, driven by real clients
(http.client, curl, grpcio with stubs generated from proto/ at test time), and
every front at once."""

import http.client
import json
import shutil
import subprocess
import threading

import grpc
import pylibmc
import pytest
from pymemcache.client.base import Client as PyMemcacheClient

from conftest import Server, free_port, wait_listening, worker_of


class AllFronts(Server):
    def __init__(self, binary, worker_id):
        self.http_port, self.grpc_port = free_port(), free_port()
        super().__init__(binary, worker_id, [f"-http-port={self.http_port}", f"-grpc-port={self.grpc_port}"])
        wait_listening(self.http_port, self.proc)
        wait_listening(self.grpc_port, self.proc)


@pytest.fixture
def fronts(katsubushi_bin):
    s = AllFronts(katsubushi_bin, worker_id=654)
    yield s
    s.stop()


def test_http_routes(fronts):
    c = http.client.HTTPConnection("127.0.0.1", fronts.http_port, timeout=5)
    c.request("GET", "/id")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/plain"
    assert worker_of(int(r.read())) == 654
    c.request("GET", "/ids?n=5", headers={"Accept": "application/json"})
    r = c.getresponse()
    ids = json.loads(r.read())["ids"]
    assert len(ids) == 5 and all(isinstance(i, str) for i in ids)
    c.request("GET", "/stats")
    stats = json.loads(c.getresponse().read())
    assert stats["get_hits"] == 6 and stats["version"]
    c.request("GET", "/healthz")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"ok\n")
    c.request("GET", "/metrics")
    assert b'katsubushi_ids_issued_total{front="http"} 6' in c.getresponse().read()
    c.request("DELETE", "/id")
    r = c.getresponse()
    r.read()
    assert r.status == 405
    c.close()


def test_curl(fronts):
    curl = shutil.which("curl")
    assert curl, "curl is not installed"
    out = subprocess.run([curl, "-sf", f"http://127.0.0.1:{fronts.http_port}/ids?n=3"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    assert len(out.split("\n")) == 3 and not out.endswith("\n")
    out = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          f"http://127.0.0.1:{fronts.http_port}/ids?n=1001"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out == "400"


def test_grpc_fetch_multi_stats(fronts, stubs):
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    with grpc.insecure_channel(f"127.0.0.1:{fronts.grpc_port}") as ch:
        gen = rpc.GeneratorStub(ch)
        one = gen.Fetch(pb.FetchRequest(), timeout=5).id
        assert worker_of(one) == 654
        assert len(gen.FetchMulti(pb.FetchMultiRequest(n=0), timeout=5).ids) == 1
        assert len(gen.FetchMulti(pb.FetchMultiRequest(n=1000), timeout=5).ids) == 1000
        with pytest.raises(grpc.RpcError) as e:
            gen.FetchMulti(pb.FetchMultiRequest(n=1001), timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stats = rpc.StatsStub(ch).Get(pb.StatsRequest(), timeout=5)
        assert stats.get_hits == 1002 and stats.pid == fronts.proc.pid


def test_grpc_health_and_reflection(fronts, stubs):
    health_pb, health_rpc = stubs["health_pb2"], stubs["health_pb2_grpc"]
    refl_pb, refl_rpc = stubs["reflection_pb2"], stubs["reflection_pb2_grpc"]
    with grpc.insecure_channel(f"127.0.0.1:{fronts.grpc_port}") as ch:
        health = health_rpc.HealthStub(ch)
        for service in ["", "katsubushi.Generator"]:
            r = health.Check(health_pb.HealthCheckRequest(service=service), timeout=5)
            assert r.status == health_pb.HealthCheckResponse.SERVING, service
        responses = refl_rpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([refl_pb.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert {"katsubushi.Generator", "katsubushi.Stats"} <= names


def test_all_fronts_at_once_all_distinct(fronts, stubs):
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    results, errors = {}, []

    def text():
        c = PyMemcacheClient(("127.0.0.1", fronts.port), timeout=10)
        keys = [f"k{i}" for i in range(100)]
        results["text"] = [int(v) for _ in range(250) for v in c.get_many(keys).values()]
        c.close()

    def binary():
        c = pylibmc.Client([f"127.0.0.1:{fronts.port}"], binary=True)
        keys = [f"k{i}" for i in range(100)]
        results["binary"] = [int(v) for _ in range(250) for v in c.get_multi(keys).values()]
        c.disconnect_all()

    def http_front():
        c = http.client.HTTPConnection("127.0.0.1", fronts.http_port, timeout=10)
        ids = []
        for _ in range(25):
            c.request("GET", "/ids?n=1000")
            ids += [int(x) for x in c.getresponse().read().split(b"\n")]
        c.close()
        results["http"] = ids

    def grpc_front():
        with grpc.insecure_channel(f"127.0.0.1:{fronts.grpc_port}") as ch:
            gen = rpc.GeneratorStub(ch)
            results["grpc"] = [i for _ in range(25) for i in gen.FetchMulti(pb.FetchMultiRequest(n=1000),
                                                                            timeout=10).ids]

    def run(f):
        try:
            f()
        except Exception as e:  # reported below; a thread must not die silently
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f,)) for f in (text, binary, http_front, grpc_front)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    everything = [i for ids in results.values() for i in ids]
    assert {k: len(v) for k, v in results.items()} == {"text": 25000, "binary": 25000, "http": 25000,
                                                       "grpc": 25000}
    assert len(set(everything)) == 100_000
    assert all(worker_of(i) == 654 for i in everything)


def metric(http_port, name):
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    return int(next(line.split()[1] for line in body.splitlines() if line.startswith(name + " ")))


def test_grpc_reply_coalescing_is_counted(fronts, stubs):
    """Many calls in flight on one channel: replies of a batch are corked, and
    every channel is one the front can cork (gRPC names it fd:<n>). Both
    counters are in /metrics, so a gRPC upgrade that stops it shows."""
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    assert metric(fronts.http_port, "katsubushi_grpc_replies_corked_total") == 0
    with grpc.insecure_channel(f"127.0.0.1:{fronts.grpc_port}") as ch:
        gen = rpc.GeneratorStub(ch)
        for _ in range(20):
            futures = [gen.Fetch.future(pb.FetchRequest(), timeout=10) for _ in range(100)]
            assert all(f.result().id > 0 for f in futures)
    corked = metric(fronts.http_port, "katsubushi_grpc_replies_corked_total")
    print(f"2000 calls, 100 at a time: {corked} replies corked")
    assert corked > 0
    assert metric(fronts.http_port, "katsubushi_grpc_replies_uncorkable_total") == 0
