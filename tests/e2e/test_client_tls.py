"""The client side of TLS (issue 22): the C ABI's kb_client_* and
katsubushi -health-check against the real server's TLS fronts.

kb_client gets IDs over tls:// (memcached) and https://, verified against a CA
file; a wrong CA, a wrong name and a plaintext port are clear errors, the
last at once; mutual TLS needs the client certificate; a caller built before
the TLS fields (a smaller struct_size) gets the defaults; other programs'
TLS servers (memcached -Z, nginx with ssl) answer it too. The health check
speaks TLS to the fronts the server's own settings say speak it, verifies
with -tls-ca-file, and presents -tls-client-cert-file to a mutual-TLS front.
"""

import os
import ssl
import subprocess
import time

import pytest
from pymemcache.client.base import Client as MemcacheClient

import kb_client_ctypes as kbc
from conftest import free_port, stop_process, wait_listening
from redis_topology import Certs
from test_tls_fronts import certs, start, tls_args  # noqa: F401  (certs, start are fixtures)

# A plaintext port answers a TLS client at its first bytes: well under this.
FAILS_FAST_S = 1.0


@pytest.fixture(scope="module")
def lib(katsubushi_lib):
    return kbc.load(katsubushi_lib)


def fetch_error(lib, servers, **kw):
    client = kbc.Client(lib, servers, timeout_ms=3000, attempt_timeout_ms=1000, **kw)
    try:
        started = time.monotonic()
        with pytest.raises(kbc.ClientError) as e:
            client.fetch()
        return e.value, time.monotonic() - started
    finally:
        client.close()


def test_ids_over_tls_and_https(lib, certs, start):
    s = start(tls_args(certs))
    for server in (f"tls://127.0.0.1:{s.port}", f"https://127.0.0.1:{s.http_port}", f"tls://localhost:{s.port}"):
        client = kbc.Client(lib, [server], tls_ca_file=certs.ca)
        try:
            first = client.fetch()
            ids = client.fetch_multi(5)
            assert first < ids[0] and ids == sorted(set(ids)), server
        finally:
            client.close()


def test_wrong_ca_wrong_name_and_old_callers_are_clear_errors(lib, certs, start):
    s = start(tls_args(certs))
    server = f"tls://127.0.0.1:{s.port}"
    e, _ = fetch_error(lib, [server], tls_ca_file=certs.other_ca)
    assert e.status == kbc.KB_UNAVAILABLE
    assert f"{server}: TLS handshake failed: server certificate not verified" in e.detail, e.detail
    # The certificate names 127.0.0.1 and localhost, not this.
    e, _ = fetch_error(lib, [server], tls_ca_file=certs.ca, tls_server_name="kb.example")
    assert "server certificate is not for the name dialled (hostname mismatch)" in e.detail, e.detail
    # A caller built before the TLS fields: its struct ends before them, so
    # the CA file set past its end is not read and the system store is used.
    e, _ = fetch_error(lib, [server], tls_ca_file=certs.ca, struct_size=kbc.FIRST_RELEASE_SIZE)
    assert "server certificate not verified" in e.detail, e.detail
    # Files that do not load: at open, with the file named.
    with pytest.raises(kbc.ClientError) as opened:
        kbc.Client(lib, [server], tls_ca_file=certs.ca + ".missing")
    assert opened.value.status == kbc.KB_INVALID_ARGUMENT
    assert "TLS files did not load: cannot load the CA file " + certs.ca + ".missing" in opened.value.detail


def test_plaintext_ports_fail_a_tls_client_at_once(lib, certs, start):
    s = start([])
    e, took = fetch_error(lib, [f"tls://127.0.0.1:{s.port}"], tls_ca_file=certs.ca)
    # Our memcached front closes a TLS client at its first byte.
    assert "TLS handshake failed: the server closed the connection" in e.detail, e.detail
    assert took < FAILS_FAST_S
    e, took = fetch_error(lib, [f"https://127.0.0.1:{s.http_port}"], tls_ca_file=certs.ca)
    assert "the server does not speak TLS (the server answered \"HTTP/1.1 400" in e.detail, e.detail
    assert took < FAILS_FAST_S


def test_mutual_tls_needs_the_client_certificate(lib, certs, start):
    s = start([*tls_args(certs), f"-tls-client-ca-file={certs.ca}"])
    server = f"tls://127.0.0.1:{s.port}"
    e, _ = fetch_error(lib, [server], tls_ca_file=certs.ca)
    assert "certificate required" in e.detail, e.detail
    client = kbc.Client(lib, [server, f"https://127.0.0.1:{s.http_port}"], tls_ca_file=certs.ca,
                        tls_cert_file=certs.client_cert, tls_key_file=certs.client_key)
    try:
        assert client.fetch() > 0
    finally:
        client.close()


def health_check(binary, env, *args):
    r = subprocess.run([binary, "-health-check", *args], capture_output=True, text=True, timeout=10,
                       env={**os.environ, **env})
    return r.returncode, r.stdout


def server_env(certs, **extra):
    """The server's TLS settings as an image passes them, and the check's own."""
    env = {"KATSUBUSHI_TLS_CERT_FILE": certs.server_cert, "KATSUBUSHI_TLS_KEY_FILE": certs.server_key}
    env.update({f"KATSUBUSHI_{k.upper()}": v for k, v in extra.items()})
    return env


def test_health_check_speaks_tls_to_the_fronts_that_do(katsubushi_bin, certs, start):
    s = start(tls_args(certs))
    env = server_env(certs)
    assert health_check(katsubushi_bin, env, f"-http-port={s.http_port}") == (
        0, f"healthy: HTTPS 127.0.0.1:{s.http_port}/healthz\n")
    assert health_check(katsubushi_bin, env, f"-port={s.port}") == (
        0, f"healthy: memcached over TLS 127.0.0.1:{s.port}\n")
    # -tls=memcache: the HTTP front is plaintext, and the check knows.
    plain_http = start([*tls_args(certs), "-tls=memcache"], name="tls-memcache-only")
    assert health_check(katsubushi_bin, {**env, "KATSUBUSHI_TLS": "memcache"}, f"-http-port={plain_http.http_port}") == (
        0, f"healthy: HTTP 127.0.0.1:{plain_http.http_port}/healthz\n")
    # Verified with a CA file: the right one passes, another fails and says why.
    assert health_check(katsubushi_bin, server_env(certs, tls_ca_file=certs.ca), f"-port={s.port}")[0] == 0
    rc, out = health_check(katsubushi_bin, server_env(certs, tls_ca_file=certs.other_ca), f"-port={s.port}")
    assert rc == 1
    assert out.startswith(f"unhealthy: memcached over TLS 127.0.0.1:{s.port}: TLS handshake failed: "
                          "server certificate not verified"), out
    # The chain, not the name: a certificate that does not name 127.0.0.1 is
    # still this server's.
    cert, key = certs._leaf("elsewhere", "elsewhere", "subjectAltName=DNS:kb.elsewhere.example\n")
    elsewhere = start(tls_args(certs, cert, key), name="elsewhere")
    env = {**server_env(certs, tls_ca_file=certs.ca), "KATSUBUSHI_TLS_CERT_FILE": cert, "KATSUBUSHI_TLS_KEY_FILE": key}
    assert health_check(katsubushi_bin, env, f"-port={elsewhere.port}") == (
        0, f"healthy: memcached over TLS 127.0.0.1:{elsewhere.port}\n")


def test_health_check_against_a_plaintext_front_says_so(katsubushi_bin, certs):
    # The check believes TLS (the environment says so), the port is plaintext.
    port = free_port()
    proc = subprocess.Popen([katsubushi_bin, "-worker-id=9", f"-port={port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        started = time.monotonic()
        rc, out = health_check(katsubushi_bin, server_env(certs), f"-port={port}")
        assert rc == 1 and "TLS handshake failed" in out, out
        assert time.monotonic() - started < FAILS_FAST_S + 0.5
    finally:
        stop_process(proc)


def test_health_check_with_mutual_tls(katsubushi_bin, certs, start):
    s = start([*tls_args(certs), f"-tls-client-ca-file={certs.ca}"])
    env = server_env(certs, tls_client_ca_file=certs.ca)
    rc, out = health_check(katsubushi_bin, env, f"-http-port={s.http_port}")
    assert rc == 1
    assert "give the check one with -tls-client-cert-file and -tls-client-key-file" in out, out
    env = server_env(certs, tls_client_ca_file=certs.ca, tls_client_cert_file=certs.client_cert,
                     tls_client_key_file=certs.client_key, tls_ca_file=certs.ca)
    assert health_check(katsubushi_bin, env, f"-http-port={s.http_port}") == (
        0, f"healthy: HTTPS 127.0.0.1:{s.http_port}/healthz\n")
    assert health_check(katsubushi_bin, env, f"-port={s.port}") == (
        0, f"healthy: memcached over TLS 127.0.0.1:{s.port}\n")
    # A certificate the server's client CA did not sign is refused, and said.
    other = Certs(os.path.join(os.path.dirname(certs.ca), "other"))
    env["KATSUBUSHI_TLS_CLIENT_CERT_FILE"], env["KATSUBUSHI_TLS_CLIENT_KEY_FILE"] = other.client_cert, other.client_key
    rc, out = health_check(katsubushi_bin, env, f"-port={s.port}")
    assert rc == 1 and "unknown ca" in out, out


# nginx answering /id over TLS; its temporary files under the test's directory.
NGINX_CONF = """
worker_processes 1; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    location /id {{ default_type text/plain; return 200 "4242"; }}
  }}
}}
"""


class Peer:
    """Another program's TLS server on a free loopback port, always stopped by PID."""

    def __init__(self, argv, port):
        self.port = port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port, self.proc)

    def stop(self):
        stop_process(self.proc)


def test_other_tls_servers_memcached_z_and_nginx(lib, certs, tmp_path):
    """Not only our own fronts: Debian's memcached -Z (a stored "id") and nginx
    with ssl (return 200 "4242") answer kb_client over tls:// and https://."""
    port = free_port()
    memcached = Peer(["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-Z",
                      "-o", f"ssl_chain_cert={certs.server_cert},ssl_key={certs.server_key}"], port)
    nginx = None
    try:
        mc = MemcacheClient(("127.0.0.1", port), tls_context=ssl.create_default_context(cafile=certs.ca), timeout=5)
        assert mc.set("id", b"12345", noreply=False)  # STORED before the client asks
        mc.close()
        client = kbc.Client(lib, [f"tls://127.0.0.1:{port}"], tls_ca_file=certs.ca)
        try:
            assert client.fetch() == 12345
        finally:
            client.close()
        conf = tmp_path / "nginx.conf"
        nginx_port = free_port()
        conf.write_text(NGINX_CONF.format(dir=tmp_path, port=nginx_port, cert=certs.server_cert,
                                          key=certs.server_key))
        nginx = Peer(["nginx", "-c", str(conf), "-p", str(tmp_path)], nginx_port)
        client = kbc.Client(lib, [f"https://localhost:{nginx_port}"], tls_ca_file=certs.ca)
        try:
            assert client.fetch() == 4242
            assert client.fetch() == 4242  # again, on the pooled TLS connection
        finally:
            client.close()
    finally:
        memcached.stop()
        if nginx:
            nginx.stop()
