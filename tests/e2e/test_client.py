"""The client library (kb_client_*, katsubushi::Client underneath) through
ctypes, against real servers on 127.0.0.1: this project's binary, go-katsubushi
where ../shared/peer has it, and small fake servers that count requests and
send bad replies.

Request counts come from the servers themselves (STAT cmd_get) or from the
fakes, so that "no request twice to one server beyond the documented
attempts" is measured where the requests arrive."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import kb_client_ctypes as kbc
from conftest import Server, free_port, wait_listening, worker_of

# go-katsubushi for interop, where present (../shared/peer beside the clone or
# its worktree directory); the tests that need it are skipped without it.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GO_PEER = next(
    (p for p in (os.environ.get("KATSUBUSHI_GO_PEER", ""),
                 os.path.join(_ROOT, "..", "shared", "peer", "katsubushi"),
                 os.path.join(_ROOT, "..", "..", "shared", "peer", "katsubushi"))
     if p and os.access(p, os.X_OK)), "")


@pytest.fixture(scope="module")
def lib(katsubushi_lib):
    return kbc.load(katsubushi_lib)


@pytest.fixture
def servers(katsubushi_bin):
    """Starts this project's servers on demand; stops (and resumes) them all."""
    started = []

    def start(worker_id, http=False):
        extra = []
        http_port = None
        if http:
            http_port = free_port()
            extra = [f"-http-port={http_port}"]
        s = Server(katsubushi_bin, worker_id=worker_id, extra_args=extra)
        s.http_port = http_port
        if http:
            wait_listening(http_port, s.proc)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGCONT)
        s.stop()


@pytest.fixture
def client(lib):
    made = []

    def make(addresses, **kwargs):
        c = kbc.Client(lib, addresses, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def cmd_get(port):
    """The server's own count of get commands."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = s.recv(4096)
            assert chunk, "stats connection closed"
            data += chunk
    for line in data.split(b"\r\n"):
        if line.startswith(b"STAT cmd_get "):
            return int(line.split()[2])
    raise AssertionError("no cmd_get in stats")


def sigstop(proc):
    """SIGSTOP, then wait until the kernel has actually stopped the process
    (delivery is asynchronous: a request sent right after kill() may still be
    answered)."""
    proc.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.005)
    raise AssertionError("process did not stop")


def refused_address():
    """A 127.0.0.1 port with nothing listening (bound then closed)."""
    return f"127.0.0.1:{free_port()}"


class FakeServer:
    """A TCP server on 127.0.0.1 that counts requests and answers each with
    `respond(request, n)` (bytes, or None to close the connection), closing
    after each reply when close_after=True. A request is a memcached "get"
    line, or an HTTP request head when http=True."""

    def __init__(self, respond, http=False, close_after=False):
        self.respond, self.http, self.close_after = respond, http, close_after
        self.requests = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = f"http://127.0.0.1:{self.port}" if http else f"127.0.0.1:{self.port}"
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        end = b"\r\n\r\n" if self.http else b"\r\n"
        data = b""
        try:
            while True:
                while end not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                request, data = data.split(end, 1)
                with self.lock:
                    self.requests += 1
                if self.http:
                    target = request.split(b" ")[1]
                    n = int(target.split(b"n=")[1]) if b"n=" in target else 1
                else:
                    n = len(request.split()) - 1
                reply = self.respond(request, n)
                if reply is not None:
                    conn.sendall(reply)
                if reply is None or self.close_after:
                    conn.close()
                    return
        except OSError:
            return

    def count(self):
        with self.lock:
            return self.requests

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def fake():
    made = []

    def make(respond, http=False, close_after=False):
        f = FakeServer(respond, http, close_after)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def memcache_reply(ids, keys=None):
    keys = keys or (["id"] if len(ids) == 1 else [str(i) for i in range(len(ids))])
    out = b""
    for key, value in zip(keys, ids):
        text = value if isinstance(value, bytes) else str(value).encode()
        out += b"VALUE %s 0 %d\r\n%s\r\n" % (key.encode(), len(text), text)
    return out + b"END\r\n"


def assert_from_worker(ids, worker_id):
    assert all(i > 0 and worker_of(i) == worker_id for i in ids), ids
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "not strictly increasing"


# --- IDs from real servers ------------------------------------------------


def start_on_unix_socket(binary, worker_id, path):
    """The server on a unix socket only (-sock replaces the TCP listener)."""
    proc = subprocess.Popen([binary, f"-worker-id={worker_id}", f"-sock={path}", "-threads=2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, "katsubushi exited early"
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"katsubushi did not listen on {path}")


def test_ids_are_valid_and_increasing_over_every_transport(katsubushi_bin, servers, client, tmp_path):
    s = servers(41, http=True)
    sock = str(tmp_path / "kb.sock")
    u = start_on_unix_socket(katsubushi_bin, 42, sock)
    try:
        for address, worker in ((f"127.0.0.1:{s.port}", 41), (f"http://127.0.0.1:{s.http_port}", 41),
                                (f"http://127.0.0.1:{s.http_port}/", 41), (f"unix:{sock}", 42)):
            c = client([address])
            singles = [c.fetch() for _ in range(300)]
            assert_from_worker(singles, worker)
            many = c.fetch_multi(1000)
            assert len(many) == 1000
            assert_from_worker(singles + many, worker)
            assert_from_worker(c.fetch_multi(2), worker)
    finally:
        u.terminate()
        u.wait()


def test_fetch_multi_is_one_request(servers, client):
    s = servers(43)
    c = client([f"127.0.0.1:{s.port}"])
    before = cmd_get(s.port)
    c.fetch_multi(1000)
    c.fetch()
    assert cmd_get(s.port) - before == 2
    with pytest.raises(kbc.ClientError) as e:
        c.fetch_multi(1001)
    assert e.value.status == kbc.KB_INVALID_ARGUMENT
    assert cmd_get(s.port) - before == 2


@pytest.mark.skipif(not GO_PEER, reason="go-katsubushi binary not present")
def test_go_katsubushi_memcached_and_http(client):
    port, http_port = free_port(), free_port()
    proc = subprocess.Popen([GO_PEER, "-worker-id=44", f"-port={port}", f"-http-port={http_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        wait_listening(http_port, proc)
        for address in (f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"):
            c = client([address])
            ids = [c.fetch() for _ in range(100)]
            ids += c.fetch_multi(1000)  # chunked over HTTP
            ids += c.fetch_multi(3)
            assert_from_worker(ids, 44)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not GO_PEER, reason="go-katsubushi binary not present")
def test_go_katsubushi_stopped_then_killed_fails_over(servers, client):
    port = free_port()
    go = subprocess.Popen([GO_PEER, "-worker-id=45", f"-port={port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, go)
        ours = servers(46)
        c = client([f"127.0.0.1:{port}", f"127.0.0.1:{ours.port}"], timeout_ms=5000,
                   attempt_timeout_ms=500)
        assert worker_of(c.fetch()) == 45
        sigstop(go)
        t0 = time.monotonic()
        assert worker_of(c.fetch()) == 46
        assert 0.48 <= time.monotonic() - t0 < 0.95
        go.send_signal(signal.SIGCONT)
        time.sleep(0.2)  # past the 100 ms backoff: the Go server is first again
        assert worker_of(c.fetch()) == 45
        go.kill()
        go.wait()
        t0 = time.monotonic()
        assert worker_of(c.fetch()) == 46
        assert time.monotonic() - t0 < 0.4
    finally:
        if go.poll() is None:
            go.send_signal(signal.SIGCONT)
            go.kill()
            go.wait()


# --- Failover ---------------------------------------------------------------


def test_first_server_refused_goes_to_the_next(servers, client):
    b = servers(52)
    c = client([refused_address(), f"127.0.0.1:{b.port}"], timeout_ms=5000, attempt_timeout_ms=2000)
    ids = []
    for _ in range(50):
        t0 = time.monotonic()
        ids.append(c.fetch())
        # A refusal is an answer: no waiting out the 2 s attempt timeout.
        assert time.monotonic() - t0 < 1.0
    assert_from_worker(ids, 52)
    assert cmd_get(b.port) == 50


def test_each_server_gets_at_most_two_requests_per_fetch(servers, client, fake):
    bad = fake(lambda request, n: b"SERVER_ERROR no worker id\r\n")
    good = servers(53)
    c = client([bad.address, f"127.0.0.1:{good.port}"], timeout_ms=5000, attempt_timeout_ms=2000)
    assert worker_of(c.fetch()) == 53
    assert bad.count() == 2, "two attempts at the failing server, as documented"
    assert cmd_get(good.port) == 1
    # Within its backoff the failing server is passed over entirely.
    assert worker_of(c.fetch()) == 53
    assert bad.count() == 2
    assert cmd_get(good.port) == 2
    # After the backoff (100 ms) it is tried again, twice, and skipped again.
    time.sleep(0.15)
    assert worker_of(c.fetch()) == 53
    assert bad.count() == 4
    assert cmd_get(good.port) == 3


def test_in_order_by_default_random_start_spreads(servers, client):
    a, b = servers(71), servers(72)
    ordered = client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
    assert {worker_of(ordered.fetch()) for _ in range(100)} == {71}
    spread = client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], random_start=True)
    workers = [worker_of(spread.fetch()) for _ in range(200)]
    # Each server's share is binomial(200, 1/2): below 60 once in ~10^8 runs.
    assert workers.count(71) >= 60 and workers.count(72) >= 60, workers.count(71)
    assert cmd_get(a.port) + cmd_get(b.port) == 300


def test_stopped_server_times_out_once_then_next(servers, client):
    a, b = servers(61), servers(62)
    c = client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], timeout_ms=5000, attempt_timeout_ms=500)
    assert worker_of(c.fetch()) == 61
    assert cmd_get(a.port) == 1
    sigstop(a.proc)
    try:
        t0 = time.monotonic()
        id_ = c.fetch()
        elapsed = time.monotonic() - t0
        assert worker_of(id_) == 62
        # One attempt_timeout at the stopped server, not two (which would be >= 1 s).
        assert 0.48 <= elapsed < 0.95, elapsed
        # The stopped server is skipped (backoff) for the next calls: fast.
        t0 = time.monotonic()
        assert worker_of(c.fetch()) == 62
        assert time.monotonic() - t0 < 0.4
    finally:
        a.proc.send_signal(signal.SIGCONT)
    # The request it had queued is now answered: exactly one reached it.
    deadline = time.monotonic() + 5
    while cmd_get(a.port) != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cmd_get(a.port) == 2
    assert cmd_get(b.port) == 2


def test_killed_server_fails_over_fast_and_comes_back(servers, client):
    a, b = servers(63), servers(64)
    c = client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], timeout_ms=5000, attempt_timeout_ms=2000)
    assert worker_of(c.fetch()) == 63  # leaves a pooled connection to a
    a.stop(signal.SIGKILL)
    t0 = time.monotonic()
    assert worker_of(c.fetch()) == 64
    assert time.monotonic() - t0 < 1.0, "a dead server should fail over without waiting"


def test_restarted_server_stale_pooled_connections_do_not_fail_a_call(katsubushi_bin, client):
    """Several pooled connections to a server that restarts are all stale: the
    first attempt meets one, and the retry must not meet another."""
    port = free_port()

    def start():
        proc = subprocess.Popen([katsubushi_bin, "-worker-id=69", f"-port={port}", "-threads=2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port, proc)
        return proc

    proc = start()
    try:
        c = client([f"127.0.0.1:{port}"], timeout_ms=5000, attempt_timeout_ms=2000)
        barrier = threading.Barrier(8)

        def burst():
            barrier.wait()
            for _ in range(200):
                c.fetch()

        threads = [threading.Thread(target=burst) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        proc.terminate()
        proc.wait()
        proc = start()
        assert worker_of(c.fetch()) == 69
    finally:
        proc.kill()
        proc.wait()


def test_mid_run_stop_and_kill_lose_no_call(servers, client):
    a, b = servers(65), servers(66)
    c = client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], timeout_ms=5000, attempt_timeout_ms=500)
    ids, errors = [], []
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                ids.append(c.fetch())
            except kbc.ClientError as e:
                errors.append(e)

    workers = [threading.Thread(target=run) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.3)
        sigstop(a.proc)
        time.sleep(1.2)
        a.proc.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        a.stop(signal.SIGKILL)
        time.sleep(0.3)
    finally:
        if a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        stop.set()
        for w in workers:
            w.join()
    assert not errors, errors[:3]
    assert len(set(ids)) == len(ids), "an ID was returned twice"
    by_worker = {65: [], 66: []}
    for i in ids:
        by_worker[worker_of(i)].append(i)
    assert by_worker[65] and by_worker[66], "both servers should have served"
    for worker in (65, 66):
        assert len(set(by_worker[worker])) == len(by_worker[worker])


def test_all_down_is_an_error_with_the_last_reason(client):
    first, second = refused_address(), refused_address()
    c = client([first, second], timeout_ms=5000)
    with pytest.raises(kbc.ClientError) as e:
        c.fetch()
    assert e.value.status == kbc.KB_UNAVAILABLE
    assert e.value.detail.endswith(f"{second}: connect failed (Connection refused)"), e.value.detail
    assert e.value.detail.count(first) == 2 and e.value.detail.count(second) == 2
    with pytest.raises(kbc.ClientError) as e:
        c.fetch_multi(10)
    assert e.value.status == kbc.KB_UNAVAILABLE


def test_all_stopped_ends_by_the_call_timeout(servers, client):
    a, b = servers(67), servers(68)
    c = client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], timeout_ms=600, attempt_timeout_ms=500)
    sigstop(a.proc)
    sigstop(b.proc)
    t0 = time.monotonic()
    with pytest.raises(kbc.ClientError) as e:
        c.fetch()
    elapsed = time.monotonic() - t0
    # The call's deadline, not one attempt_timeout per server (1 s) or two (2 s).
    assert 0.58 <= elapsed < 0.95, elapsed
    assert e.value.status == kbc.KB_UNAVAILABLE
    assert e.value.detail.endswith(f"127.0.0.1:{b.port}: timed out"), e.value.detail


# --- Bad replies: an error, never an ID ----------------------------------


BAD_MEMCACHE_REPLIES = {
    "truncated": lambda n: memcache_reply([1576894129223245824])[:20],
    "non-decimal": lambda n: memcache_reply([b"15768941292232458x4"]),
    "zero": lambda n: memcache_reply([0]),
    "hex": lambda n: memcache_reply([b"0x1234"]),
    "wrong count": lambda n: memcache_reply(list(range(100, 100 + n + 1)),
                                            [str(i) for i in range(n + 1)]),
    "too few": lambda n: b"END\r\n",
    "wrong key": lambda n: memcache_reply([77], ["other"]),
    "length lies": lambda n: b"VALUE id 0 5\r\n77\r\nEND\r\n",
    "extra bytes": lambda n: memcache_reply([77]) + b"VALUE id 0 2\r\n78\r\nEND\r\n",
    "overflow": lambda n: memcache_reply([b"18446744073709551616"]),
}


@pytest.mark.parametrize("kind", sorted(BAD_MEMCACHE_REPLIES))
def test_bad_memcache_reply_is_an_error(client, fake, kind):
    make = BAD_MEMCACHE_REPLIES[kind]
    f = fake(lambda request, n: make(n), close_after=kind == "truncated")
    c = client([f.address], timeout_ms=5000, attempt_timeout_ms=2000)
    with pytest.raises(kbc.ClientError) as e:
        c.fetch()
    assert e.value.status == kbc.KB_UNAVAILABLE
    assert f.count() == 2, "two attempts, no more"


def test_bad_multi_reply_gives_no_partial_ids(client, fake):
    # 3 good values then garbage: nothing of it reaches the caller.
    f = fake(lambda request, n: memcache_reply([10, 11, 12]).replace(b"END\r\n", b"") + b"VALUE 3 0 1\r\nx\r\nEND\r\n")
    c = client([f.address], timeout_ms=5000)
    with pytest.raises(kbc.ClientError):
        c.fetch_multi(4)  # asserts every slot is 0


BAD_HTTP_REPLIES = {
    "status 503": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    "non-decimal": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n12a",
    "wrong count": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n5\n6",
    "no length": b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n5",
    "truncated chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n12",
}


@pytest.mark.parametrize("kind", sorted(BAD_HTTP_REPLIES))
def test_bad_http_reply_is_an_error(client, fake, kind):
    reply = BAD_HTTP_REPLIES[kind]
    f = fake(lambda request, n: reply, http=True, close_after=True)
    c = client([f.address], timeout_ms=5000, attempt_timeout_ms=2000)
    with pytest.raises(kbc.ClientError) as e:
        c.fetch()
    assert e.value.status == kbc.KB_UNAVAILABLE
    assert f.count() == 2


def test_good_fake_reply_is_accepted(client, fake):
    """The fakes speak the protocol well enough that only the bad bytes fail."""
    f = fake(lambda request, n: memcache_reply(list(range(1000, 1000 + n))))
    c = client([f.address])
    assert c.fetch() == 1000
    assert c.fetch_multi(3) == [1000, 1001, 1002]
    assert f.count() == 2
    h = fake(lambda request, n: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n1234", http=True)
    assert client([h.address]).fetch() == 1234


def test_bad_config_is_invalid_argument(lib):
    for servers in ([], ["nohost"], ["127.0.0.1:1", "tcp://x:1"], ["tls://x"]):
        with pytest.raises(kbc.ClientError) as e:
            kbc.Client(lib, servers)
        assert e.value.status == kbc.KB_INVALID_ARGUMENT
        assert not servers or servers[-1] in e.value.detail, e.value.detail  # the address that did not parse
