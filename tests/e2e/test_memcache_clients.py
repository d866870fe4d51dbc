"""Real memcached client libraries against the real server binary over TCP."""

import shutil
import signal
import subprocess
import time

import pylibmc
import pytest
from pymemcache.client.base import Client as PyMemcacheClient

from conftest import ms_of, worker_of


def check_ids(values, worker_id):
    ids = [int(v) for v in values]
    assert len(set(ids)) == len(ids), "duplicate IDs"
    now_ms = time.time() * 1000
    for i in ids:
        assert worker_of(i) == worker_id
        assert abs(ms_of(i) - now_ms) < 60_000, "ID time is not now"
    return ids


def test_pymemcache_get_and_get_many(server):
    c = PyMemcacheClient(("127.0.0.1", server.port), timeout=5)
    try:
        first = check_ids([c.get("id")], server.worker_id)[0]
        many = c.get_many(["a", "b", "c", "d"])
        assert sorted(many) == ["a", "b", "c", "d"]
        ids = check_ids(many.values(), server.worker_id)
        assert min(ids) > first
        assert c.version().decode() != ""
        stats = c.stats()
        assert stats[b"get_hits"] == 5
        assert stats[b"cmd_get"] == 2
    finally:
        c.close()


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_pylibmc_get_and_get_multi(server, binary):
    c = pylibmc.Client([f"127.0.0.1:{server.port}"], binary=binary)
    try:
        one = check_ids([c.get("x")], server.worker_id)
        keys = [f"k{i}" for i in range(50)]
        got = c.get_multi(keys)  # binary: GETKQ x 50 + NOOP
        assert sorted(got) == sorted(keys)
        ids = check_ids(list(got.values()) + one, server.worker_id)
        assert len(ids) == 51
    finally:
        c.disconnect_all()


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_memccat(server, binary):
    memcat = shutil.which("memccat") or shutil.which("memcat")
    assert memcat, "libmemcached-tools is not installed"
    args = [memcat, f"--servers=127.0.0.1:{server.port}"]
    if binary:
        args.append("--binary")
    out = subprocess.run(args + ["one", "two"], capture_output=True, text=True, timeout=10, check=True)
    check_ids(out.stdout.split(), server.worker_id)
    assert len(out.stdout.split()) == 2


def test_many_clients_all_distinct(server):
    ids = []
    for binary in (False, True):
        c = pylibmc.Client([f"127.0.0.1:{server.port}"], binary=binary)
        for _ in range(20):
            ids += c.get_multi([f"k{i}" for i in range(100)]).values()
        c.disconnect_all()
    pm = PyMemcacheClient(("127.0.0.1", server.port), timeout=5)
    for _ in range(20):
        ids += pm.get_many([f"k{i}" for i in range(100)]).values()
    pm.close()
    assert len(check_ids(ids, server.worker_id)) == 6000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_promptly(server, sig):
    c = PyMemcacheClient(("127.0.0.1", server.port), timeout=5)
    c.get("warm")
    start = time.monotonic()
    assert server.stop(sig) == 0
    assert time.monotonic() - start < 6
    out = server.proc.stdout.read().decode()
    assert "Shutdown completed" in out


def test_version_flag(katsubushi_bin):
    out = subprocess.run([katsubushi_bin, "-worker-id=1", "-version"], capture_output=True, text=True,
                         timeout=10, check=True)
    assert out.stdout.startswith("katsubushi version: ")
