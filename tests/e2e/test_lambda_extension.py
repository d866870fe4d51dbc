"""The server binary as an AWS Lambda extension, against a fake Extensions API
(fake_lambda.py, from AWS's contract) and a real redis-server. The "function"
is what a function in the same environment would run, unmodified: pymemcache
and curl on 127.0.0.1."""

import os
import signal
import subprocess
import threading
import time

import pytest
from pymemcache.client.base import Client as Memcache

from conftest import free_port, ms_of, worker_of
from fake_lambda import FakeLambda
from test_redis_lease import NS, RausParticipant, rds, wait_for  # noqa: F401  (rds is a fixture)


@pytest.fixture
def fake():
    f = FakeLambda()
    yield f
    f.close()


class Extension:
    """The binary started as Lambda starts an extension: no arguments,
    configured by the environment (plus `args` where a test needs a flag)."""

    def __init__(self, binary, fake, env, args=(), tmp_path=None):
        self.port, self.http_port = free_port(), free_port()
        full_env = {"AWS_LAMBDA_RUNTIME_API": fake.api, "KATSUBUSHI_LAMBDA_EXTENSION": "1",
                    "KATSUBUSHI_PORT": str(self.port), "KATSUBUSHI_HTTP_PORT": str(self.http_port),
                    "KATSUBUSHI_THREADS": "2", "_HANDLER": "function.handler", **env}
        self.proc = subprocess.Popen([binary, *args], env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def memcache(self, timeout=2):
        return Memcache(("127.0.0.1", self.port), connect_timeout=timeout, timeout=timeout)

    def curl(self, path, timeout=2):
        r = subprocess.run(["curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}",
                            f"http://127.0.0.1:{self.http_port}{path}"],
                           capture_output=True, text=True, timeout=timeout + 5)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return out


def listening_addresses(port):
    """Local addresses with a listening TCP socket on `port`, from /proc."""
    found = []
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, p = local.split(":")
                if state == "0A" and int(p, 16) == port:
                    found.append((family, address))
    return found


def test_register_invoke_serve_and_shutdown(katsubushi_bin, fake, rds):
    ext = Extension(katsubushi_bin, fake, {"KATSUBUSHI_REDIS": rds.url(),
                                           "KATSUBUSHI_MIN_WORKER_ID": "40",
                                           "KATSUBUSHI_MAX_WORKER_ID": "49"})
    try:
        registered = fake.extension()
        headers, body = fake.register_requests[0]
        assert headers["Lambda-Extension-Name"] == os.path.basename(katsubushi_bin)
        assert body == {"events": ["INVOKE", "SHUTDOWN"]}
        # Ready (it asked for its first event) with both fronts on loopback only.
        assert listening_addresses(ext.port) == [(4, "0100007F")]
        assert listening_addresses(ext.http_port) == [(4, "0100007F")]
        # No lease at init: no discovery wait, nothing in Redis yet.
        assert rds.client.keys(f"{NS}:id:*") == []

        # INVOKE: the lease is acquired before the function asks.
        fake.send_invoke(registered, "req-1")
        keys = rds.client.keys(f"{NS}:id:*")
        assert len(keys) == 1
        worker = int(keys[0].rsplit(":", 1)[1])
        assert 40 <= worker <= 49
        assert 0 < rds.client.pttl(keys[0]) <= 60_000  # the Lambda default TTL

        # The function, unchanged from the ECS sidecar days.
        mc = ext.memcache()
        first = int(mc.get("id"))
        many = mc.get_many([f"k{i}" for i in range(20)])
        code, body = ext.curl("/id")
        assert code == 200
        last = int(body)
        ids = [first, *map(int, many.values()), last]
        assert all(worker_of(i) == worker for i in ids)
        assert len(set(ids)) == len(ids) and last > first
        assert ext.curl("/healthz")[0] == 200
        mc.close()

        # A second INVOKE confirms the lease again (compare-and-set extends it).
        rds.client.pexpire(keys[0], 5_000)
        fake.send_invoke(registered, "req-2")
        assert rds.client.pttl(keys[0]) > 50_000

        # SHUTDOWN: drained, released with its watermark, exit 0 before the deadline.
        deadline = fake.send_shutdown(registered, budget_ms=2000)
        assert ext.proc.wait(timeout=5) == 0
        assert time.time() * 1000 < deadline
        assert rds.client.exists(keys[0]) == 0
        assert int(rds.client.get("{%s:id:%d}:watermark" % (NS, worker))) >= ms_of(last)
        assert not fake.extension_errors
    finally:
        print(ext.stop())


def test_a_static_worker_id_is_an_init_error(katsubushi_bin, fake):
    ext = Extension(katsubushi_bin, fake, {"KATSUBUSHI_WORKER_ID": "5"})
    try:
        assert ext.proc.wait(timeout=10) == 1
        (path, identifier, error_type, body), = fake.extension_errors
        assert path == "init/error" and error_type == "Extension.StaticWorkerId"
        assert identifier in fake.extensions
        assert "static -worker-id is refused" in body["errorMessage"]
    finally:
        ext.stop()


def test_a_bad_setting_is_an_init_error(katsubushi_bin, fake):
    ext = Extension(katsubushi_bin, fake, {"KATSUBUSHI_REDIS": "http://nope"})
    try:
        assert ext.proc.wait(timeout=10) != 0
        (path, _, error_type, body), = fake.extension_errors
        assert path == "init/error" and error_type == "Extension.Config"
        assert "redis" in body["errorMessage"].lower()
    finally:
        ext.stop()


def test_the_flag_and_the_extensions_directory_select_the_mode(katsubushi_bin, fake, rds, tmp_path):
    # Lambda starts /opt/extensions/<name> with no arguments: the binary knows
    # it is an extension from where it lives.
    (tmp_path / "extensions").mkdir()
    linked = tmp_path / "extensions" / "kb-ext"
    os.symlink(katsubushi_bin, linked)
    env = {"AWS_LAMBDA_RUNTIME_API": fake.api, "KATSUBUSHI_REDIS": rds.url(),
           "KATSUBUSHI_PORT": str(free_port()), "KATSUBUSHI_HTTP_PORT": "0"}
    proc = subprocess.Popen([str(linked)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ext = fake.extension()
        assert ext.name == "kb-ext"
        fake.send_shutdown(ext)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_capacity_bound_is_a_clear_error_then_an_id_once_one_is_freed(katsubushi_bin, fake, rds):
    # A range of two ids, both held by other environments (raus holders).
    holder_a = RausParticipant(rds.client, [7])
    holder_b = RausParticipant(rds.client, [8])
    ext = Extension(katsubushi_bin, fake, {"KATSUBUSHI_REDIS": rds.url(),
                                           "KATSUBUSHI_MIN_WORKER_ID": "7",
                                           "KATSUBUSHI_MAX_WORKER_ID": "8"})
    try:
        registered = fake.extension()
        fake.send_invoke(registered)
        mc = ext.memcache()
        # Each protocol's own error, at once, again and again (one scan of
        # the range per backoff window, not one per request).
        for _ in range(20):
            started = time.monotonic()
            with pytest.raises(Exception) as refused:
                mc.get("id")
            assert time.monotonic() - started < 0.25  # a Redis timeout would be 1 s
            assert "SERVER_ERROR" in str(refused.value) or "no free worker id" in str(refused.value)
        code, body = ext.curl("/id")
        assert code == 503 and "no free worker id" in body
        code, body = ext.curl("/healthz")
        assert code == 503 and "no free worker id" in body

        # One environment goes away: this one gets its id within a backoff
        # window (at most 2 s) and serves.
        holder_b.stop()
        freed_at = time.monotonic()
        got = None
        while time.monotonic() - freed_at < 3:
            try:
                got = int(mc.get("id"))
                break
            except Exception:
                time.sleep(0.01)
        assert got is not None, "no id after one was released"
        assert worker_of(got) == 8
        assert time.monotonic() - freed_at < 2.5
        assert ext.curl("/healthz")[0] == 200
        mc.close()
        fake.send_shutdown(registered)
        assert ext.proc.wait(timeout=5) == 0
    finally:
        holder_a.stop()
        print(ext.stop())


class Fetcher:
    """A function asking the extension for IDs over memcached in a loop,
    keeping (wall ms when answered, id)."""

    def __init__(self, ext):
        self.ext, self.ids, self.errors = ext, [], 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        mc = self.ext.memcache(timeout=1)
        while not self.stop_event.is_set():
            try:
                value = mc.get("id")
                self.ids.append((time.time() * 1000, int(value)))
            except Exception:
                self.errors += 1
                mc.close()
            time.sleep(0.002)
        mc.close()

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=10)


def test_frozen_past_its_lease_never_duplicates(katsubushi_bin, fake, rds, tmp_path):
    go = RausParticipant(rds.client, [6])  # a go-katsubushi instance holds id 6
    env = {"KATSUBUSHI_REDIS": rds.url(), "KATSUBUSHI_MIN_WORKER_ID": "5",
           "KATSUBUSHI_MAX_WORKER_ID": "6", "KATSUBUSHI_LEASE_EXPIRY": "3s"}
    first = Extension(katsubushi_bin, fake, env)
    other_fake = FakeLambda()
    second = None
    try:
        ext = fake.extension()
        fake.send_invoke(ext)
        fetch_first = Fetcher(first)
        assert wait_for(lambda: len(fetch_first.ids) > 20, 5)
        # The environment is frozen (Lambda stops it between events) for
        # longer than its lease.
        first.proc.send_signal(signal.SIGSTOP)
        assert wait_for(lambda: rds.client.exists(f"{NS}:id:5") == 0, 6)
        # Another environment takes id 5 and serves.
        second = Extension(katsubushi_bin, other_fake, env)
        other_fake.send_invoke(other_fake.extension())
        fetch_second = Fetcher(second)
        assert wait_for(lambda: len(fetch_second.ids) > 20, 5)
        assert all(worker_of(i) == 5 for _, i in fetch_second.ids)
        # The first is thawed while the second holds id 5 (and Go id 6).
        thawed_at = time.time() * 1000
        first.proc.send_signal(signal.SIGCONT)
        time.sleep(1.0)
        fetch_first.stop()
        fetch_second.stop()
        after_thaw = [i for t, i in fetch_first.ids if t > thawed_at]
        assert not after_thaw, "the thawed environment issued IDs under a lease it lost"
        everything = [i for _, i in fetch_first.ids + fetch_second.ids]
        assert len(everything) == len(set(everything)), "an ID was issued twice"
        # The thawed one answers errors now, and /healthz says why.
        code, body = first.curl("/healthz")
        assert code == 503
    finally:
        go.stop()
        first.proc.send_signal(signal.SIGCONT)
        print(first.stop())
        if second is not None:
            print(second.stop())
        other_fake.close()
