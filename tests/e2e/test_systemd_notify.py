"""The server as a systemd Type=notify service: it speaks sd_notify(3) to
$NOTIFY_SOCKET itself. Here the test is the service manager: it binds the
unix datagram socket (a path in a temp dir, or an abstract '@' name), starts
the real binary with the variables systemd sets, and checks the messages and
their order: READY=1 only once every listener is up and a worker id is held
(a static one, or a Redis lease; never while Redis is unreachable, with a
STATUS= that says why), WATCHDOG=1 every half of $WATCHDOG_USEC while IDs can
be issued and none while they cannot, STOPPING=1 at SIGTERM and nothing after.
"""

import os
import signal
import socket
import statistics
import subprocess
import time
import uuid

import pytest

from conftest import free_port, memcache_get, wait_listening, worker_of
from test_redis_lease import NS, LeasedServer, RedisServer, rds  # noqa: F401  (rds is a fixture)


class NotifySocket:
    """What systemd listens on: one datagram per sd_notify() call, kept as
    (monotonic time, {VARIABLE: value})."""

    def __init__(self, tmp_path, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"katsubushi-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = str(tmp_path / "notify")
            self.sock.bind(path)
            self.env_value = path
        self.messages = []

    def receive(self, timeout):
        """Reads what arrives within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return
            fields = {}
            for line in data.decode().split("\n"):
                key, _, value = line.partition("=")
                fields[key] = value
            self.messages.append((time.monotonic(), fields))

    def wait(self, predicate, timeout, since=0.0):
        """Receives until a message received after `since` satisfies
        `predicate`; returns it."""
        deadline = time.monotonic() + timeout
        seen = next((i for i, m in enumerate(self.messages) if m[0] > since), len(self.messages))
        while time.monotonic() < deadline:
            for m in self.messages[seen:]:
                if predicate(m[1]):
                    return m
            seen = len(self.messages)
            self.receive(min(0.1, max(0.0, deadline - time.monotonic())))
        raise AssertionError(f"no such message within {timeout}s: {self.messages}")

    def statuses(self):
        return [f["STATUS"] for _, f in self.messages if "STATUS" in f]

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifySocket(tmp_path)
    yield n
    n.close()


class Service(LeasedServer):
    """The binary started the way systemd starts it (stop and output as
    LeasedServer's)."""

    def __init__(self, binary, notify, tmp_path, args, watchdog_usec=None):
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LD_PRELOAD")}
        env["NOTIFY_SOCKET"] = notify.env_value
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.conn = None
        self.log_path = tmp_path / f"katsubushi-{len(os.listdir(tmp_path))}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "-threads=1", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)


@pytest.fixture
def services(katsubushi_bin, tmp_path):
    started = []

    def start(notify, args, **kwargs):
        s = Service(katsubushi_bin, notify, tmp_path, args, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def index_of(messages, predicate):
    return next(i for i, (_, f) in enumerate(messages) if predicate(f))


def stop_and_check_stopping(service, notify):
    """SIGTERM: STOPPING=1 comes at once (before the drain), is the last
    message, and the process exits 0."""
    signalled = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    at, _ = notify.wait(lambda f: f.get("STOPPING") == "1", timeout=5)
    assert at - signalled < 1.0
    assert service.proc.wait(timeout=15) == 0
    notify.receive(0.2)
    assert "STOPPING" in notify.messages[-1][1], notify.messages[-3:]


def test_static_worker_id_abstract_socket(services, tmp_path):
    notify = NotifySocket(tmp_path, abstract=True)
    try:
        port, http_port = free_port(), free_port()
        s = services(notify, ["-worker-id=7", f"-port={port}", f"-http-port={http_port}"])
        _, ready = notify.wait(lambda f: f.get("READY") == "1", timeout=10)
        # Every listener accepts the moment READY=1 arrives.
        assert worker_of(memcache_get(port)) == 7
        socket.create_connection(("127.0.0.1", http_port), timeout=2).close()
        assert ready["STATUS"] == "issuing IDs as worker id 7"
        assert "MAINPID" not in ready  # systemd started this very process
        # No watchdog without WATCHDOG_USEC; READY=1 exactly once.
        notify.receive(0.5)
        assert not [f for _, f in notify.messages if "WATCHDOG" in f]
        assert [f.get("READY") for _, f in notify.messages].count("1") == 1
        stop_and_check_stopping(s, notify)
    finally:
        notify.close()


def test_no_ready_when_a_listener_fails(services, notify):
    # The HTTP port is taken: the memcached listener came up, the HTTP one
    # cannot, the process exits 1, and systemd must never have heard READY=1.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        s = services(notify, ["-worker-id=7", f"-port={free_port()}", f"-http-port={http_port}"])
        assert s.proc.wait(timeout=10) == 1
    notify.receive(0.3)
    assert not [f for _, f in notify.messages if "READY" in f], notify.messages


def test_ready_only_once_the_redis_lease_is_held(services, notify, rds):  # noqa: F811
    port = free_port()
    s = services(notify, [f"-redis={rds.url()}", f"-port={port}"])
    ready_at, ready = notify.wait(lambda f: f.get("READY") == "1", timeout=20)
    # Before it: STATUS= said it was waiting for a worker id, and the wait
    # was the lease's (the broadcast listening lasts 3 s).
    before = notify.messages[:index_of(notify.messages, lambda f: "READY" in f)]
    assert any("no worker id held" in f.get("STATUS", "") for _, f in before), before
    assert ready_at - notify.messages[0][0] > 2.5
    # At READY=1 the lease is in Redis and the server issues as that id.
    keys = rds.client.keys(f"{NS}:id:*")
    assert len(keys) == 1, keys
    leased = int(keys[0].rsplit(":", 1)[1])
    assert ready["STATUS"] == f"issuing IDs as worker id {leased}"
    assert worker_of(memcache_get(port)) == leased
    stop_and_check_stopping(s, notify)
    assert rds.client.keys(f"{NS}:id:*") == []  # released after STOPPING=1


def test_no_ready_nor_watchdog_while_redis_is_unreachable(services, notify):
    redis_port = free_port()  # nothing listens there yet
    port = free_port()
    s = services(notify, [f"-redis=redis://127.0.0.1:{redis_port}/0?ns={NS}", f"-port={port}"],
                 watchdog_usec=200_000)
    wait_listening(port, s.proc)
    notify.receive(3.0)
    kinds = {k for _, f in notify.messages for k in f}
    assert "READY" not in kinds and "WATCHDOG" not in kinds, notify.messages
    # STATUS= says why: no worker id, and the keeper's last word (Redis).
    last = notify.statuses()[-1]
    assert "no worker id held" in last and "cannot reach Redis" in last, last

    redis_server = RedisServer(port=redis_port)
    try:
        _, ready = notify.wait(lambda f: f.get("READY") == "1", timeout=15)
        assert ready["STATUS"].startswith("issuing IDs as worker id ")
        # Able to issue: the watchdog pings start.
        notify.wait(lambda f: f.get("WATCHDOG") == "1", timeout=1)
        stop_and_check_stopping(s, notify)
    finally:
        redis_server.stop(signal.SIGKILL)


def test_watchdog_every_half_of_watchdog_usec(services, notify):
    s = services(notify, ["-worker-id=9", f"-port={free_port()}"], watchdog_usec=400_000)
    ready_at, _ = notify.wait(lambda f: f.get("READY") == "1", timeout=10)
    notify.receive(2.0)
    pings = [t for t, f in notify.messages if f.get("WATCHDOG") == "1"]
    assert pings and pings[0] - ready_at < 0.05  # the first with (or right after) READY=1
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    # 200 ms apart: not the whole timeout (400), not the poll interval (100).
    assert 0.17 < statistics.median(gaps) < 0.25, gaps
    assert max(gaps) < 0.4, gaps  # never as late as the timeout itself
    assert 8 <= len(pings) <= 12, pings
    stop_and_check_stopping(s, notify)


def test_watchdog_stops_while_the_lease_is_lost(services, notify, rds):  # noqa: F811
    s = services(notify, [f"-redis={rds.url()}", f"-port={free_port()}"], watchdog_usec=400_000)
    notify.wait(lambda f: f.get("READY") == "1", timeout=20)
    notify.receive(0.5)
    (key,) = rds.client.keys(f"{NS}:id:*")
    stolen_at = time.monotonic()
    rds.client.set(key, "stolen-by-another-instance", ex=600)  # the next renewal finds it lost

    lost_at, _ = notify.wait(lambda f: "no worker id held" in f.get("STATUS", ""), timeout=5,
                             since=stolen_at)
    back_at, back = notify.wait(lambda f: f.get("STATUS", "").startswith("issuing IDs"), timeout=15,
                                since=lost_at)
    between = [f for t, f in notify.messages if lost_at <= t < back_at]
    assert not [f for f in between if "WATCHDOG" in f], between
    assert back_at - lost_at > 2.5  # re-acquiring listens to the broadcast for 3 s
    notify.wait(lambda f: f.get("WATCHDOG") == "1", timeout=0.5, since=back_at - 0.001)
    assert back["STATUS"] != f"issuing IDs as worker id {key.rsplit(':', 1)[1]}", s.output()
    assert "READY" not in back  # READY=1 is said once
    stop_and_check_stopping(s, notify)
