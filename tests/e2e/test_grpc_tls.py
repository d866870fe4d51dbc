"""The gRPC front over TLS (issue 22), driven by grpcio with
ssl_channel_credentials, Python's ssl module and raw sockets against the real
binary: IDs over TLS, a plaintext client refused at once, mutual TLS (a good
client certificate, none, one from another CA), rotation under load (file swap
and SIGUSR1) with no failed call, stalled handshakes closed within the idle
timeout, and the handshake series in /metrics.

Certificates are made with the openssl CLI (redis_topology.Certs); every
process is started on free loopback ports and stopped by its PID.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings

import grpc
import pytest

from conftest import Server, TIME_SCALE, free_port, wait_listening, worker_of
from redis_topology import Certs, redis_env

# Short, so that the stalled-handshake tests wait little; the calls here are
# far quicker than this.
IDLE_TIMEOUT_S = 1.0
# How much later than the deadline a stalled connection may be closed
# (the acceptor's poll wakes at the deadline; scheduling on a busy CI host).
CLOSE_SLACK_S = 1.5 * TIME_SCALE


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    c = Certs(str(tmp_path_factory.mktemp("certs")))
    # A client certificate from the unrelated CA: refused under mutual TLS.
    other_key = os.path.join(c.dir, "other-ca.key")
    c.foreign_cert, c.foreign_key = leaf(c, "foreign-client", "not ours", "extendedKeyUsage=clientAuth\n",
                                         c.other_ca, other_key)
    return c


def leaf(certs, name, cn, extensions, ca, ca_key):
    path = lambda n: os.path.join(certs.dir, n)  # noqa: E731
    cert, key, csr, ext = path(f"{name}.crt"), path(f"{name}.key"), path(f"{name}.csr"), path(f"{name}.ext")
    with open(ext, "w") as f:
        f.write(extensions)
    run = lambda *a: subprocess.run(["openssl", *a], check=True, timeout=60, capture_output=True,  # noqa: E731
                                    env=redis_env())
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", ext)
    return cert, key


def wait_for(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def serial_of(cert_path):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", cert_path], check=True, timeout=30,
                         capture_output=True, text=True, env=redis_env()).stdout
    return out.strip().split("=", 1)[1].upper()


class TlsServer(Server):
    """katsubushi with gRPC over TLS (and plaintext HTTP for /metrics). The
    certificate and key are copies in `live`, which a test may replace."""

    def __init__(self, binary, certs, live_dir, client_ca=False, extra=()):
        self.live_cert, self.live_key = os.path.join(live_dir, "tls.crt"), os.path.join(live_dir, "tls.key")
        shutil.copy(certs.server_cert, self.live_cert)
        shutil.copy(certs.server_key, self.live_key)
        self.http_port, self.grpc_port = free_port(), free_port()
        args = [f"-http-port={self.http_port}", f"-grpc-port={self.grpc_port}", "-tls=grpc",
                f"-tls-cert-file={self.live_cert}", f"-tls-key-file={self.live_key}",
                f"-idle-timeout={int(IDLE_TIMEOUT_S * 1000)}ms", *extra]
        if client_ca:
            args.append(f"-tls-client-ca-file={certs.ca}")
        super().__init__(binary, 777, args)
        wait_listening(self.http_port, self.proc)
        wait_listening(self.grpc_port, self.proc)
        # wait_listening's connection closed before sending a byte: let it be
        # counted before a test reads the counters.
        assert wait_for(lambda: self.failures("closed") >= 1)

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return text

    def counter(self, name, labels=""):
        m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\d+)$", self.metrics(), re.M)
        assert m, f"{name}{labels} not in /metrics"
        return int(m.group(1))

    def handshakes(self):
        return self.counter("katsubushi_tls_handshakes_total", '{front="grpc"}')

    def failures(self, reason):
        return self.counter("katsubushi_tls_handshake_failures_total", f'{{front="grpc",reason="{reason}"}}')


@pytest.fixture
def tls_server(katsubushi_bin, certs, tmp_path):
    s = TlsServer(katsubushi_bin, certs, str(tmp_path))
    yield s
    s.stop()


@pytest.fixture
def mtls_server(katsubushi_bin, certs, tmp_path):
    s = TlsServer(katsubushi_bin, certs, str(tmp_path), client_ca=True)
    yield s
    s.stop()


def channel(port, certs, client=None):
    """A TLS channel trusting the test CA, for the name in the certificate."""
    key, cert = (None, None)
    if client:
        cert, key = client
        key, cert = open(key, "rb").read(), open(cert, "rb").read()
    creds = grpc.ssl_channel_credentials(root_certificates=open(certs.ca, "rb").read(), private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def served_serial(port, certs):
    """The serial of the certificate a new TLS connection (ALPN h2) gets."""
    ctx = ssl.create_default_context(cafile=certs.ca)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            return tls.getpeercert()["serialNumber"].upper()


def test_fetch_over_tls(tls_server, certs, stubs):
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    health_pb, health_rpc = stubs["health_pb2"], stubs["health_pb2_grpc"]
    before = tls_server.handshakes()
    with channel(tls_server.grpc_port, certs) as ch:
        gen = rpc.GeneratorStub(ch)
        assert worker_of(gen.Fetch(pb.FetchRequest(), timeout=5).id) == 777
        ids = gen.FetchMulti(pb.FetchMultiRequest(n=1000), timeout=5).ids
        assert len(ids) == 1000 and len(set(ids)) == 1000
        r = health_rpc.HealthStub(ch).Check(health_pb.HealthCheckRequest(service=""), timeout=5)
        assert r.status == health_pb.HealthCheckResponse.SERVING
        # Many calls in flight on one connection: their replies are corked
        # (the coalescing found the TLS connection's socket).
        corked = tls_server.counter("katsubushi_grpc_replies_corked_total")
        futures = [gen.Fetch.future(pb.FetchRequest(), timeout=10) for _ in range(2000)]
        got = [f.result().id for f in futures]
        assert len(set(got)) == 2000
    assert tls_server.counter("katsubushi_grpc_replies_corked_total") > corked
    assert tls_server.counter("katsubushi_grpc_replies_uncorkable_total") == 0
    assert tls_server.handshakes() == before + 1
    # A connection that only asks for health (a probe) counts too.
    with channel(tls_server.grpc_port, certs) as ch:
        r = health_rpc.HealthStub(ch).Check(health_pb.HealthCheckRequest(service=""), timeout=5)
        assert r.status == health_pb.HealthCheckResponse.SERVING
    assert tls_server.handshakes() == before + 2
    assert served_serial(tls_server.grpc_port, certs) == serial_of(certs.server_cert)


def test_tls_1_1_refused(tls_server, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():  # deprecated, which is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    before = tls_server.failures("unsupported")
    with socket.create_connection(("127.0.0.1", tls_server.grpc_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
    # Refused by the server (gRPC's TLS 1.2 minimum), not by this client.
    assert wait_for(lambda: tls_server.failures("unsupported") == before + 1)


def test_plaintext_client_fails_promptly(tls_server, stubs):
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    before = tls_server.failures("not_tls")
    start = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{tls_server.grpc_port}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            rpc.GeneratorStub(ch).Fetch(pb.FetchRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 2 * TIME_SCALE
    # The HTTP/2 preface on a raw socket: closed at once, not at the deadline.
    with socket.create_connection(("127.0.0.1", tls_server.grpc_port), timeout=5) as s:
        start = time.monotonic()
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert closed_by_server(s)
        assert time.monotonic() - start < IDLE_TIMEOUT_S / 2
    assert tls_server.failures("not_tls") >= before + 2


def closed_by_server(s):
    """Waits until the server closes `s`: an end of stream, or a reset (the
    server closed with our bytes unread)."""
    try:
        return s.recv(100) == b""
    except (ConnectionResetError, ssl.SSLEOFError):  # a TLS socket: closed without close_notify
        return True


def stalled_for(port, send=b""):
    """Connects, sends `send` and nothing more; how long until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10 * IDLE_TIMEOUT_S + 10) as s:
        start = time.monotonic()
        if send:
            s.sendall(send)
        assert closed_by_server(s)
        return time.monotonic() - start


def test_stalled_handshake_closed_within_idle_timeout(tls_server, certs):
    before = tls_server.failures("timeout")
    took = stalled_for(tls_server.grpc_port)
    assert IDLE_TIMEOUT_S * 0.9 <= took <= IDLE_TIMEOUT_S + CLOSE_SLACK_S
    assert tls_server.failures("timeout") == before + 1
    # The start of a ClientHello, then nothing: gRPC's own handshake deadline
    # (the same timeout) closes it.
    took = stalled_for(tls_server.grpc_port, bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
    assert took <= IDLE_TIMEOUT_S + CLOSE_SLACK_S
    # A client that closes before its first byte.
    closed = tls_server.failures("closed")
    socket.create_connection(("127.0.0.1", tls_server.grpc_port), timeout=5).close()
    deadline = time.monotonic() + 5
    while tls_server.failures("closed") == closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tls_server.failures("closed") == closed + 1
    # The server still serves.
    assert served_serial(tls_server.grpc_port, certs) == serial_of(certs.server_cert)


def test_mutual_tls(mtls_server, certs, stubs):
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    with channel(mtls_server.grpc_port, certs, client=(certs.client_cert, certs.client_key)) as ch:
        assert worker_of(rpc.GeneratorStub(ch).Fetch(pb.FetchRequest(), timeout=5).id) == 777
    refused = 0
    for client in [None, (certs.foreign_cert, certs.foreign_key)]:
        with channel(mtls_server.grpc_port, certs, client=client) as ch:
            with pytest.raises(grpc.RpcError) as e:
                rpc.GeneratorStub(ch).Fetch(pb.FetchRequest(), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, client
        refused += 1
        # gRPC retries a failed connection: at least one failure each.
        assert wait_for(lambda: mtls_server.failures("client_certificate") >= refused), client
    assert mtls_server.handshakes() == 1
    # The failures were counted, not printed in gRPC's format one per handshake.
    mtls_server.stop()
    output = mtls_server.proc.stdout.read().decode()
    assert "Handshake failed" not in output, output


class Load:
    """Fetch in a loop from threads, each on a long-lived channel and, every
    few calls, a new one; counts calls and keeps every error."""

    def __init__(self, port, certs, stubs, threads=4):
        self.port, self.certs = port, certs
        self.pb, self.rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
        self.stop_flag = threading.Event()
        self.calls, self.errors = 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def loop(self):
        try:
            with channel(self.port, self.certs) as long_lived:
                gen = self.rpc.GeneratorStub(long_lived)
                while not self.stop_flag.is_set():
                    for _ in range(20):
                        gen.Fetch(self.pb.FetchRequest(), timeout=10)
                    with channel(self.port, self.certs) as fresh:
                        self.rpc.GeneratorStub(fresh).Fetch(self.pb.FetchRequest(), timeout=10)
                    with self.lock:
                        self.calls += 21
        except Exception as e:  # reported by stop(); a thread must not die silently
            with self.lock:
                self.errors.append(e)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=30)
        return self.calls, self.errors


def replace_atomically(source, target):
    tmp = target + ".new"
    shutil.copy(source, tmp)
    os.replace(tmp, target)


def test_rotation_under_load(tls_server, certs, stubs):
    ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    second = leaf(certs, "server-2", "127.0.0.1", ext, certs.ca, certs.ca_key)
    third = leaf(certs, "server-3", "127.0.0.1", ext, certs.ca, certs.ca_key)
    first_serial = serial_of(certs.server_cert)
    assert served_serial(tls_server.grpc_port, certs) == first_serial
    load = Load(tls_server.grpc_port, certs, stubs)
    try:
        time.sleep(0.5)
        # A file swap, found by the store's polling (every 2 s).
        replace_atomically(second[1], tls_server.live_key)
        replace_atomically(second[0], tls_server.live_cert)
        deadline = time.monotonic() + 10
        while served_serial(tls_server.grpc_port, certs) != serial_of(second[0]):
            assert time.monotonic() < deadline, "the new certificate was not served within 10 s"
            time.sleep(0.1)
        time.sleep(0.5)
        # A swap and SIGUSR1: served at once, well before the next poll.
        replace_atomically(third[1], tls_server.live_key)
        replace_atomically(third[0], tls_server.live_cert)
        tls_server.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        assert served_serial(tls_server.grpc_port, certs) == serial_of(third[0])
        time.sleep(0.5)
    finally:
        calls, errors = load.stop()
    assert errors == [] and calls > 100, (calls, errors[:3])
    assert tls_server.counter("katsubushi_tls_certificate_reloads_total") == 2


def test_h2load_over_tls(tls_server):
    h2load = shutil.which("h2load")
    if not h2load:
        pytest.skip("h2load is not installed")
    body = os.path.join(os.path.dirname(tls_server.live_cert), "fetch.bin")
    with open(body, "wb") as f:
        f.write(b"\x00\x00\x00\x00\x00")  # one empty gRPC message: a FetchRequest
    out = subprocess.run([h2load, "-n", "20000", "-c", "2", "-m", "50", "-d", body,
                          "-H", "content-type: application/grpc", "-H", "te: trailers",
                          f"https://127.0.0.1:{tls_server.grpc_port}/katsubushi.Generator/Fetch"],
                         capture_output=True, text=True, timeout=60).stdout
    assert re.search(r"requests: 20000 total, 20000 started, 20000 done, 20000 succeeded", out), out
    assert "TLS Protocol: TLSv1.3" in out and "Application protocol: h2" in out, out


def test_garbage_client_hello_closed_promptly_and_counted(tls_server):
    reasons = ["not_tls", "other", "closed", "unsupported"]
    counted = lambda: sum(tls_server.failures(r) for r in reasons)  # noqa: E731
    before = counted()
    # A handshake record header, then bytes that are no ClientHello.
    took = stalled_for(tls_server.grpc_port, b"\x16\x03\x01\x00\x20" + b"\xff" * 32)
    assert took < IDLE_TIMEOUT_S / 2
    assert wait_for(lambda: counted() == before + 1)


def test_many_silent_connections_all_closed(tls_server, certs, stubs):
    """200 connections that send nothing: each closed by the deadline, and the
    front serves meanwhile."""
    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    before = tls_server.failures("timeout")
    silent = [socket.create_connection(("127.0.0.1", tls_server.grpc_port), timeout=5) for _ in range(200)]
    try:
        with channel(tls_server.grpc_port, certs) as ch:
            assert worker_of(rpc.GeneratorStub(ch).Fetch(pb.FetchRequest(), timeout=5).id) == 777
        deadline = time.monotonic() + IDLE_TIMEOUT_S + CLOSE_SLACK_S + 1
        for s in silent:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            assert closed_by_server(s)
    finally:
        for s in silent:
            s.close()
    assert tls_server.failures("timeout") == before + 200


def test_tls_client_on_plaintext_grpc_port_closed_promptly(katsubushi_bin):
    grpc_port = free_port()
    s = Server(katsubushi_bin, 778, [f"-grpc-port={grpc_port}", "-idle-timeout=10s"])
    try:
        wait_listening(grpc_port, s.proc)
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", grpc_port), timeout=5) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
                ctx.wrap_socket(raw, server_hostname="localhost")
        assert time.monotonic() - start < 2 * TIME_SCALE
    finally:
        s.stop()


def test_client_without_alpn_h2_closed_promptly(tls_server, certs):
    """gRPC requires ALPN h2: a TLS client that offers none completes the
    handshake and is closed at once (gRPC logs that at DEBUG only, so it is
    not among the counted failures)."""
    ctx = ssl.create_default_context(cafile=certs.ca)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_server.grpc_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() is None
            assert closed_by_server(tls)
    assert time.monotonic() - start < IDLE_TIMEOUT_S / 2
