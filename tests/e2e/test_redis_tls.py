"""Issue 19: a TLS-only Redis (--port 0 --tls-port), for the server and the
C ABI: a lease held, renewed and released; a wrong CA is a clear error (the
log, /healthz, kb_last_error), never a hang; mutual TLS.

The certificates are made with the openssl CLI: a CA, a server certificate
for 127.0.0.1 and localhost, a client certificate, and an unrelated CA.
"""

import signal
import time

import pytest

import kb_ctypes
from conftest import worker_of
from redis_topology import Certs, RedisServer, wait_until
from test_redis_failover import LEASE_EXPIRY, LEASE_TTL_MS, LibraryUser, owned  # noqa: F401  (owned is a fixture)
from test_redis_lease import servers  # noqa: F401  (a fixture)

VERIFY_FAILED = "certificate verify failed"
# A wrong CA shows in the log and /healthz within this long of start (the
# first connection is made at start), and /healthz answers within this long.
ERROR_SHOWN_S = 10
HEALTHZ_ANSWER_S = 2


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def lib(katsubushi_lib):
    return kb_ctypes.load(katsubushi_lib)


def tls_flags(ca, cert=None, key=None):
    return [f"-redis-tls-ca-file={ca}"] + ([f"-redis-tls-cert-file={cert}", f"-redis-tls-key-file={key}"]
                                            if cert else [])


def test_tls_only_redis_lease_held_renewed_and_released(certs, lib, servers, owned, tmp_path):
    rds = owned(RedisServer(directory=tmp_path, certs=certs))
    url = rds.url("tls")
    assert url.startswith("rediss://")
    server = servers(url, min_id=1, max_id=2, extra=[LEASE_EXPIRY, *tls_flags(certs.ca)])
    gen = kb_ctypes.Generator(lib, redis_url=url, min_id=3, max_id=4, ttl_ms=LEASE_TTL_MS,
                              redis_tls_ca_file=certs.ca)
    status, first = gen.next_id()
    assert status == kb_ctypes.KB_OK, lib.kb_last_error()
    server.wait_healthy(timeout=20)
    server_key, gen_key = f"tls:id:{server.worker_id()}", f"tls:id:{worker_of(first)}"
    assert rds.client.exists(server_key) == 1 and rds.client.exists(gen_key) == 1

    # Renewed: the server every sixth of its expiry (1 s), the library at an
    # invocation; each puts the key's TTL back up.
    rds.client.pexpire(server_key, 3000)
    rds.client.pexpire(gen_key, 3000)
    assert wait_until(lambda: rds.client.pttl(server_key) > 4000, 2.5), server.output()
    assert gen.invocation_begin() == kb_ctypes.KB_OK
    assert rds.client.pttl(gen_key) > 4000

    # Released at stop (SIGTERM) and at kb_close.
    assert server.stop(signal.SIGTERM) == 0
    assert rds.client.exists(server_key) == 0
    assert gen.close() == kb_ctypes.KB_OK
    assert rds.client.exists(gen_key) == 0


def healthz_within(server, seconds):
    started = time.monotonic()
    status, body = server.request("/healthz", timeout=seconds)
    assert time.monotonic() - started < seconds, "/healthz hung"
    return status, body


def test_wrong_ca_is_a_clear_error_never_a_hang_and_skip_verify_is_explicit(certs, katsubushi_lib, servers,
                                                                          owned, tmp_path):
    rds = owned(RedisServer(directory=tmp_path, certs=certs))
    url = rds.url("wrongca")
    wrong = servers(url, min_id=1, max_id=2, extra=[LEASE_EXPIRY, *tls_flags(certs.other_ca)])
    skipping = servers(url, min_id=1, max_id=2, extra=[LEASE_EXPIRY, *tls_flags(certs.other_ca),
                                                       "-redis-tls-skip-verify"])
    user = owned(LibraryUser(katsubushi_lib, url, 3, 4, tmp_path, duration=5,
                             fields={"redis_tls_ca_file": certs.other_ca}))

    assert wait_until(lambda: VERIFY_FAILED in wrong.output() or wrong.proc.poll() is not None, ERROR_SHOWN_S), \
        wrong.output()
    assert wrong.proc.poll() is None, f"exited: {wrong.output()}"
    status, body = healthz_within(wrong, HEALTHZ_ANSWER_S)
    assert status == 503 and VERIFY_FAILED in body, (status, body)
    assert wrong.request("/id")[0] == 503

    # The library: every call answers (UNAVAILABLE, the reason in
    # kb_last_error), and the run ends on time.
    user.proc.wait(timeout=30)
    events = user.events()
    assert events and all(i is None for _, i in events), "issued with an unverified Redis"
    assert VERIFY_FAILED in user.errors_text(), user.errors_text()

    # Opting out works, and says so.
    skipping.wait_healthy(timeout=20)
    assert "skip" in skipping.output().lower() and "warn" in skipping.output().lower(), skipping.output()
    assert rds.client.keys("wrongca:id:*") == [f"wrongca:id:{skipping.worker_id()}"]


def test_mutual_tls(certs, lib, servers, owned, tmp_path):
    rds = owned(RedisServer(directory=tmp_path, certs=certs, auth_clients=True))
    url = rds.url("mtls")
    with_cert = servers(url, min_id=1, max_id=2,
                        extra=[LEASE_EXPIRY, *tls_flags(certs.ca, certs.client_cert, certs.client_key)])
    without = servers(url, min_id=1, max_id=2, extra=[LEASE_EXPIRY, *tls_flags(certs.ca)])
    gen = kb_ctypes.Generator(lib, redis_url=url, min_id=3, max_id=4, ttl_ms=LEASE_TTL_MS,
                              redis_tls_ca_file=certs.ca, redis_tls_cert_file=certs.client_cert,
                              redis_tls_key_file=certs.client_key)
    refused = kb_ctypes.Generator(lib, redis_url=url, min_id=3, max_id=4, ttl_ms=LEASE_TTL_MS,
                                  redis_tls_ca_file=certs.ca)
    status, id_ = gen.next_id()
    assert status == kb_ctypes.KB_OK, lib.kb_last_error()
    with_cert.wait_healthy(timeout=20)
    assert refused.next_id()[0] == kb_ctypes.KB_UNAVAILABLE
    # Started with the other, so past its discovery too: it would hold the
    # range's other id by now if the handshake had been accepted.
    time.sleep(1.0)
    assert without.proc.poll() is None, without.output()
    assert healthz_within(without, HEALTHZ_ANSWER_S)[0] == 503
    assert sorted(rds.client.keys("mtls:id:*")) == sorted(
        [f"mtls:id:{with_cert.worker_id()}", f"mtls:id:{worker_of(id_)}"])
    assert gen.close() == kb_ctypes.KB_OK
    refused.close()
