"""Starts the real katsubushi binary for end-to-end tests and always stops it."""

import importlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# 2015-01-01T00:00:00Z in Unix ms, and the default layout's bit positions.
EPOCH_MS = 1420070400000
WORKER_SHIFT, SEQUENCE_BITS = 12, 12


# A sanitizer build (CMake passes KATSUBUSHI_SANITIZE) runs several times
# slower, and an ASan process also scans its heap at exit: time bounds that
# catch a bug in a Release build are widened by this factor there. They still
# catch what they are for (a stop that waits a whole 5 s deadline, a hang);
# the Release run holds the tight figure.
TIME_SCALE = 4 if os.environ.get("KATSUBUSHI_SANITIZE") else 1


def worker_of(id_):
    return (id_ >> WORKER_SHIFT) & 0x3FF


def ms_of(id_):
    return (id_ >> 22) + EPOCH_MS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"katsubushi exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"katsubushi did not listen on {port} within {timeout}s")


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Signals a process we started, kills it if it outlives `timeout`; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode

def memcache_get(port):
    """One ID through the memcached text protocol on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"get id\r\n")
        reply = b""
        while not reply.endswith(b"END\r\n"):
            chunk = c.recv(4096)
            assert chunk, reply
            reply += chunk
    return int(reply.split(b"\r\n")[1])


@pytest.fixture(scope="session")
def katsubushi_bin():
    path = os.environ.get("KATSUBUSHI_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("KATSUBUSHI_BIN must name the built katsubushi binary")
    return path


@pytest.fixture(scope="session")
def katsubushi_lib():
    path = os.environ.get("KATSUBUSHI_LIB")
    if not path:
        pytest.fail("KATSUBUSHI_LIB must name libkatsubushi.so")
    return path


class Server:
    def __init__(self, binary, worker_id, extra_args=()):
        self.port = free_port()
        self.worker_id = worker_id
        self.proc = subprocess.Popen(
            [binary, f"-worker-id={worker_id}", f"-port={self.port}", "-threads=2", *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        return stop_process(self.proc, sig, timeout)


@pytest.fixture
def server(katsubushi_bin):
    s = Server(katsubushi_bin, worker_id=321)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """Generates Python stubs for katsubushi.proto, health and reflection."""
    out = tmp_path_factory.mktemp("stubs")
    for include, proto in [(os.path.join(ROOT, "proto"), "katsubushi.proto"),
                           (os.path.join(ROOT, "proto"), "health.proto"),
                           (os.path.join(HERE, "protos"), "reflection.proto")]:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", proto], check=True, timeout=60)
    sys.path.insert(0, str(out))
    mods = {name: importlib.import_module(name) for name in
            ["katsubushi_pb2", "katsubushi_pb2_grpc", "health_pb2", "health_pb2_grpc",
             "reflection_pb2", "reflection_pb2_grpc"]}
    yield mods
    sys.path.remove(str(out))
