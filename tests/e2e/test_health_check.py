"""katsubushi -health-check against real servers on 127.0.0.1: what the
image's HEALTHCHECK, docker-compose.yml and an ECS task run, with the same
environment as the server and no shell or curl."""

import os
import socket
import subprocess
import threading
import time

from conftest import Server, free_port


def health_check(binary, *args, env=None):
    started = time.monotonic()
    r = subprocess.run([binary, "-health-check", *args], capture_output=True, text=True, timeout=10,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout, time.monotonic() - started


def test_memcached_port_from_a_flag_or_the_environment(katsubushi_bin, server):
    rc, out, _ = health_check(katsubushi_bin, f"-port={server.port}")
    assert (rc, out) == (0, f"healthy: memcached 127.0.0.1:{server.port}\n")
    # The server's own environment, as in an ECS task definition.
    rc, out, _ = health_check(katsubushi_bin, env={"KATSUBUSHI_PORT": str(server.port)})
    assert (rc, out) == (0, f"healthy: memcached 127.0.0.1:{server.port}\n")


def test_http_healthz_is_preferred_when_an_http_port_is_set(katsubushi_bin):
    http_port = free_port()
    s = Server(katsubushi_bin, worker_id=7, extra_args=[f"-http-port={http_port}"])
    try:
        rc, out, _ = health_check(katsubushi_bin, f"-http-port={http_port}", "-port=1")
        assert (rc, out) == (0, f"healthy: HTTP 127.0.0.1:{http_port}/healthz\n")
    finally:
        s.stop()


def test_unix_socket(katsubushi_bin, tmp_path):
    sock = str(tmp_path / "kb.sock")
    proc = subprocess.Popen([katsubushi_bin, "-worker-id=3", f"-sock={sock}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        rc, out, _ = health_check(katsubushi_bin, f"-sock={sock}")
        assert (rc, out) == (0, f"healthy: memcached {sock}\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_nothing_listening_is_unhealthy(katsubushi_bin):
    port = free_port()
    rc, out, _ = health_check(katsubushi_bin, f"-port={port}")
    assert rc == 1
    assert out == f"unhealthy: memcached 127.0.0.1:{port}: connect: Connection refused\n"


def test_without_a_worker_id_the_server_is_unhealthy_on_both_ports(katsubushi_bin):
    """A server waiting for its Redis lease listens but issues nothing: not healthy."""
    dead_redis = free_port()
    port, http_port = free_port(), free_port()
    proc = subprocess.Popen([katsubushi_bin, f"-redis=redis://127.0.0.1:{dead_redis}/0", f"-port={port}",
                             f"-http-port={http_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rc, out, _ = health_check(katsubushi_bin, f"-http-port={http_port}")
            if "Connection refused" not in out:
                break
            time.sleep(0.05)
        assert rc == 1 and out.startswith(f"unhealthy: HTTP 127.0.0.1:{http_port}/healthz: answered 503"), out
        rc, out, _ = health_check(katsubushi_bin, f"-port={port}")
        assert rc == 1 and out.startswith(f"unhealthy: memcached 127.0.0.1:{port}: get answered SERVER_ERROR"), out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_server_that_never_answers_fails_within_the_timeout(katsubushi_bin):
    """A wedged process that still accepts: the check ends at its 2 s bound."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        rc, out, elapsed = health_check(katsubushi_bin, f"-port={port}")
        assert rc == 1
        assert out == f"unhealthy: memcached 127.0.0.1:{port}: no answer within 2000 ms\n"
        assert 1.9 < elapsed < 3.0
    finally:
        listener.close()


def test_another_protocol_on_the_port_is_unhealthy(katsubushi_bin):
    """Something else answering on the memcached port is not our server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer():
        conn, _ = listener.accept()
        with conn:
            conn.recv(64)
            conn.sendall(b"+PONG\r\n")

    t = threading.Thread(target=answer)
    t.start()
    try:
        rc, out, _ = health_check(katsubushi_bin, f"-port={port}")
        assert (rc, out) == (1, f"unhealthy: memcached 127.0.0.1:{port}: get answered +PONG\n")
    finally:
        t.join(timeout=5)
        listener.close()
