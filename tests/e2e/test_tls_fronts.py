"""TLS on the memcached and HTTP fronts (issue 22), with real clients.

pymemcache with a tls_context and Python's https client get IDs; mutual TLS
takes a good client certificate and refuses none or one another CA signed;
the certificate rotates under load (a Kubernetes-style symlink swap picked up
by the watcher, then files replaced and SIGUSR1) with no failed request and
new connections seeing the new serial; and each bad input is closed promptly
and counted by reason in /metrics: a plaintext client on a TLS port, a TLS
client on a plaintext port, a handshake that stalls, a garbage ClientHello.
"""

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from pymemcache.client.base import Client as MemcacheClient

from conftest import TIME_SCALE, free_port, wait_listening, worker_of
from redis_topology import Certs
from test_shutdown import Katsubushi

WORKER_ID = 222


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("certs")))


def serial_of(cert_path):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", cert_path], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return out.strip().split("=", 1)[1].upper()


def new_server_cert(certs, name):
    """Another server certificate (its own key) for 127.0.0.1, signed by the test CA."""
    return certs._leaf(name, "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")


def client_context(certs, cert=None, key=None, ca=None):
    ctx = ssl.create_default_context(cafile=ca or certs.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class TlsServer:
    """katsubushi with memcached and HTTP on TCP ports, started and always stopped."""

    def __init__(self, binary, tmp_path, args, name="tls"):
        self.port, self.http_port = free_port(), free_port()
        self.k = Katsubushi(binary, tmp_path, [f"-worker-id={WORKER_ID}", f"-port={self.port}",
                                               f"-http-port={self.http_port}", "-threads=2", *args], name=name)
        wait_listening(self.port, self.k.proc)
        wait_listening(self.http_port, self.k.proc)

    def tls_socket(self, ctx, port=None, timeout=5):
        raw = socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def metrics(self, ctx=None):
        if ctx is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=5, context=ctx)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
        return body

    def stop(self):
        code = self.k.stop_timed()
        self.k.kill()
        return code


@pytest.fixture
def start(katsubushi_bin, tmp_path):
    servers = []

    def _start(args, name="tls"):
        s = TlsServer(katsubushi_bin, tmp_path, args, name)
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.k.kill()


def tls_args(certs, cert=None, key=None):
    return [f"-tls-cert-file={cert or certs.server_cert}", f"-tls-key-file={key or certs.server_key}"]


def counter(metrics, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}}" if labels else name
    m = re.search(rf"^{re.escape(series)} (\d+)$", metrics, re.M)
    return int(m.group(1)) if m else 0


def memcache_id(server, ctx):
    client = MemcacheClient(("127.0.0.1", server.port), tls_context=ctx, timeout=5, connect_timeout=5)
    try:
        return int(client.get("id"))
    finally:
        client.close()


def https_id(server, ctx):
    conn = http.client.HTTPSConnection("127.0.0.1", server.http_port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/id")
        response = conn.getresponse()
        assert response.status == 200
        return int(response.read())
    finally:
        conn.close()


def test_real_clients_get_ids_over_tls(start, certs):
    server = start(tls_args(certs))
    ctx = client_context(certs)

    client = MemcacheClient(("127.0.0.1", server.port), tls_context=ctx, timeout=5)
    ids = [int(client.get("id")) for _ in range(5)]
    many = client.get_many(["a", "b", "c"])
    client.close()
    assert len(set(ids)) == 5 and all(worker_of(i) == WORKER_ID for i in ids)
    assert len(many) == 3

    # HTTPS: keep-alive requests on one connection, ALPN http/1.1 chosen over h2.
    alpn = client_context(certs)
    alpn.set_alpn_protocols(["h2", "http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", server.http_port, timeout=5, context=alpn)
    for _ in range(3):
        conn.request("GET", "/id")
        response = conn.getresponse()
        assert response.status == 200
        assert worker_of(int(response.read())) == WORKER_ID
    assert conn.sock.selected_alpn_protocol() == "http/1.1"
    assert conn.sock.version() == "TLSv1.3"
    conn.close()
    assert worker_of(https_id(server, ctx)) == WORKER_ID

    # TLS 1.2 is served; anything older is refused.
    tls12 = client_context(certs)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with server.tls_socket(tls12) as s:
        assert s.version() == "TLSv1.2"
        s.sendall(b"get id\r\n")
        assert s.recv(4096).startswith(b"VALUE id 0 ")

    metrics = server.metrics(ctx)
    assert counter(metrics, "katsubushi_tls_handshakes_total", front="memcache") >= 2
    assert counter(metrics, "katsubushi_tls_handshakes_total", front="http") >= 3
    assert server.stop()[0] == 0


def test_mutual_tls(start, certs, tmp_path):
    # A client certificate from another CA, for the refusal.
    other_key, other_csr, other_cert = (str(tmp_path / n) for n in ("o.key", "o.csr", "o.crt"))
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", other_key, "-out", other_csr,
                    "-subj", "/CN=stranger"], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "x509", "-req", "-in", other_csr, "-CA", certs.other_ca, "-CAkey",
                    os.path.join(certs.dir, "other-ca.key"), "-CAcreateserial", "-out", other_cert, "-days", "2"],
                   check=True, capture_output=True, timeout=60)
    server = start([*tls_args(certs), f"-tls-client-ca-file={certs.ca}"])

    good = client_context(certs, certs.client_cert, certs.client_key)
    assert worker_of(memcache_id(server, good)) == WORKER_ID
    assert worker_of(https_id(server, good)) == WORKER_ID

    for ctx in (client_context(certs), client_context(certs, other_cert, other_key)):
        for port in (server.port, server.http_port):
            # TLS 1.3 clients finish their side of the handshake before the
            # server checks the certificate: the refusal shows at the first read.
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                with server.tls_socket(ctx, port) as s:
                    s.sendall(b"get id\r\n" if port == server.port else b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not s.recv(4096):
                        raise ConnectionError("closed without a reply")

    metrics = server.metrics(good)
    assert counter(metrics, "katsubushi_tls_handshake_failures_total", front="memcache",
                   reason="client_certificate") == 2
    assert counter(metrics, "katsubushi_tls_handshake_failures_total", front="http", reason="client_certificate") == 2


class Load:
    """Requests in a loop until stopped: one persistent TLS memcached connection,
    and new TLS connections (memcached and HTTPS) one after another. Every
    failure is kept."""

    def __init__(self, server, ctx):
        self.server, self.ctx = server, ctx
        self.failures, self.requests = [], 0
        self.stopping = threading.Event()
        self.persistent = MemcacheClient(("127.0.0.1", server.port), tls_context=ctx, timeout=5)
        self.threads = [threading.Thread(target=self._run, args=(f,)) for f in
                        (lambda: self.persistent.get("id"), lambda: memcache_id(server, ctx),
                         lambda: https_id(server, ctx))]
        for t in self.threads:
            t.start()

    def _run(self, request):
        while not self.stopping.is_set():
            try:
                assert request() is not None
                self.requests += 1
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.failures.append(repr(e))

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        self.persistent.close()


def served_serial(server, ctx, port):
    with server.tls_socket(ctx, port) as s:
        return s.getpeercert()["serialNumber"].upper()


def wait_serial(server, ctx, serial, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(served_serial(server, ctx, p) == serial for p in (server.port, server.http_port)):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"serial {serial} not served within {timeout}s")


def test_rotation_under_load(start, certs, tmp_path):
    # The layout Kubernetes gives a mounted secret: the files are symlinks
    # into ..data, itself a symlink swapped atomically to a new directory.
    live = tmp_path / "live"
    live.mkdir()

    def publish(version, cert, key):
        directory = live / f"..{version}"
        directory.mkdir()
        for name, source in (("tls.crt", cert), ("tls.key", key)):
            with open(source, "rb") as f, open(directory / name, "wb") as g:
                g.write(f.read())
        os.symlink(directory.name, live / "..data_tmp")
        os.rename(live / "..data_tmp", live / "..data")

    publish("v1", certs.server_cert, certs.server_key)
    for name in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{name}", live / name)
    server = start(tls_args(certs, live / "tls.crt", live / "tls.key"))
    ctx = client_context(certs)
    first = serial_of(certs.server_cert)
    assert served_serial(server, ctx, server.port) == first

    load = Load(server, ctx)
    try:
        time.sleep(0.5)
        second_cert, second_key = new_server_cert(certs, "server2")
        second = serial_of(second_cert)
        publish("v2", second_cert, second_key)
        swapped = time.monotonic()
        seen = wait_serial(server, ctx, second, timeout=6)  # polled every 2 s
        print(f"symlink swap: new serial served after {seen - swapped:.2f} s")

        # Files that do not load: logged, counted, the certificate kept.
        with open(live / "..v2" / "tls.crt", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        server.k.proc.send_signal(signal.SIGUSR1)
        server.k.wait_output("do not load")
        assert served_serial(server, ctx, server.http_port) == second

        # In place, then SIGUSR1: served at once, not at the next poll.
        third_cert, third_key = new_server_cert(certs, "server3")
        third = serial_of(third_cert)
        for name, source in (("tls.key", third_key), ("tls.crt", third_cert)):
            with open(source, "rb") as f, open(live / "..v2" / name, "wb") as g:
                g.write(f.read())
        signalled = time.monotonic()
        server.k.proc.send_signal(signal.SIGUSR1)
        seen = wait_serial(server, ctx, third, timeout=6)
        print(f"SIGUSR1: new serial served after {seen - signalled:.3f} s")
        assert seen - signalled < 1.0 * TIME_SCALE
        time.sleep(0.3)
    finally:
        load.stop()
    print(f"requests under rotation: {load.requests}, failed: {len(load.failures)}")
    assert load.failures == []
    assert load.requests > 50
    metrics = server.metrics(ctx)
    assert counter(metrics, "katsubushi_tls_certificate_reloads_total") == 2
    assert counter(metrics, "katsubushi_tls_certificate_reload_failures_total") >= 1
    assert server.stop()[0] == 0


def closed_within(sock, limit_s):
    """Seconds until the peer closes `sock` (nothing but a TLS alert read), or None."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                break
            assert data[:1] == b"\x15", f"unexpected bytes {data!r}"  # an alert record at most
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def test_bad_inputs_are_closed_promptly_and_counted(start, certs):
    server = start([*tls_args(certs), "-idle-timeout=1s"])
    prompt = 0.5 * TIME_SCALE

    def connect(port):
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    # A plaintext client on each TLS port.
    with connect(server.port) as s:
        s.sendall(b"get id\r\n")
        assert closed_within(s, 5) < prompt
    with connect(server.http_port) as s:
        s.sendall(b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_within(s, 5) < prompt
    # A ClientHello that is not one: an oversized record, and garbage in a
    # well-framed one (closed at the first byte that cannot be a ClientHello).
    with connect(server.port) as s:
        s.sendall(b"\x16\x03\x01\xff\xff" + b"A" * 300)
        assert closed_within(s, 5) < prompt
    with connect(server.port) as s:
        s.sendall(b"\x16\x03\x01\x00\x30" + b"\x02" + os.urandom(47))
        assert closed_within(s, 5) < prompt

    # Handshakes that stall, after nothing or after part of a ClientHello,
    # many at once: each closed at the handshake limit (the idle timeout here),
    # holding bounded memory meanwhile.
    before = rss_kib(server.k.proc.pid)
    stalled = [connect(server.port if i % 2 else server.http_port) for i in range(200)]
    for s in stalled[::2]:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    time.sleep(0.5)
    held = rss_kib(server.k.proc.pid) - before
    print(f"200 stalled handshakes hold {held} KiB")
    assert held < 200 * 100  # well under 100 KiB each
    start_wait = time.monotonic()
    for s in stalled:
        waited = closed_within(s, 5 * TIME_SCALE)
        assert waited is not None, "a stalled handshake was not closed"
    elapsed = time.monotonic() - start_wait + 0.5
    print(f"stalled handshakes closed after {elapsed:.2f} s")
    assert 0.8 < elapsed < 2.0 * TIME_SCALE
    for s in stalled:
        s.close()

    ctx = client_context(certs)
    metrics = server.metrics(ctx)
    failures = lambda front, reason: counter(metrics, "katsubushi_tls_handshake_failures_total",  # noqa: E731
                                             front=front, reason=reason)
    assert failures("memcache", "not_tls") >= 2
    assert failures("http", "not_tls") == 1
    assert failures("memcache", "timeout") == 100 and failures("http", "timeout") == 100
    assert failures("memcache", "other") + failures("memcache", "not_tls") >= 3
    assert server.stop()[0] == 0


def test_tls_client_on_a_plaintext_port_fails_fast(start, certs):
    ctx = client_context(certs)
    for fronts, plaintext in (("-tls=http", "memcached"), ("-tls=memcache", "http")):
        server = start([*tls_args(certs), fronts], name=plaintext)
        port = server.port if plaintext == "memcached" else server.http_port
        began = time.monotonic()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            server.tls_socket(ctx, port)
        assert time.monotonic() - began < 0.5 * TIME_SCALE, plaintext
        # The plaintext front still serves plaintext.
        if plaintext == "memcached":
            client = MemcacheClient(("127.0.0.1", server.port), timeout=5)
            assert worker_of(int(client.get("id"))) == WORKER_ID
            client.close()
        else:
            assert "katsubushi_tls_handshakes_total" in server.metrics()
        assert server.stop()[0] == 0


def test_stop_closes_tls_connections_at_once(start, certs):
    server = start(tls_args(certs))
    ctx = client_context(certs)
    idle = server.tls_socket(ctx)
    idle.sendall(b"get id\r\n")
    assert idle.recv(4096).startswith(b"VALUE id 0 ")
    half = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)  # mid-handshake
    half.sendall(b"\x16\x03\x01\x02\x00")
    time.sleep(0.1)
    code, elapsed = server.k.stop_timed()
    assert code == 0
    assert elapsed < 0.3 * TIME_SCALE
    idle.close()
    half.close()
