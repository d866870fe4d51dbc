"""Stopping the real binary: one stop, one deadline (issue 12).

SIGTERM with idle clients of every front exits at once; a request in flight is
answered first; a connection accepted at the instant of the signal does not
hold the stop; a stop during start-up (Redis down, a state file's promise, a
leased id's watermark) exits 0 and releases what is held. Every stop is timed
from the signal to the exit.
"""

import signal
import socket
import struct
import subprocess
import threading
import time

import grpc
import http.client
import pytest
from conftest import TIME_SCALE, free_port, wait_listening
from test_redis_lease import rds  # noqa: F401  (rds is a fixture)

# With nothing in flight the process must be gone this soon after SIGTERM,
# whatever clients are connected (the bound). The deadline for
# in-flight requests is 5 s by default; a front that waited for an idle
# connection would take all of it (and an idle gRPC channel that held the
# stop, the GOAWAY wait's 1 s cap). Widened under sanitizers, as TIME_SCALE
# says: the gRPC stop's 50 ms quiet window took 0.36 s under ASan and load.
IDLE_EXIT_S = 0.2 * TIME_SCALE
# A stop during start-up: well under any wait it interrupts (the watermark
# and state-file waits run for seconds).
STARTUP_EXIT_S = 1.0
NS = "kbstop"


class Katsubushi:
    def __init__(self, binary, tmp_path, args, name="katsubushi"):
        self.log_path = tmp_path / f"{name}-{free_port()}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, *args], stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_output(self, text, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}: {self.output()}"
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not logged within {timeout}s: {self.output()}")

    def stop_timed(self, sig=signal.SIGTERM):
        """Sends `sig`; returns (exit code, seconds from the signal to the exit)."""
        watchdog = threading.Timer(20, self.proc.kill)
        watchdog.start()
        start = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait()  # a blocking waitpid: no polling delay in the figure
        elapsed = time.monotonic() - start
        watchdog.cancel()
        print(f"stop: exit {code} after {elapsed * 1000:.1f} ms")
        return code, elapsed

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def started(katsubushi_bin, tmp_path):
    procs = []

    def start(args, name="katsubushi"):
        k = Katsubushi(katsubushi_bin, tmp_path, args, name)
        procs.append(k)
        return k

    yield start
    for k in procs:
        k.kill()


def binary_get(key=b"k", opaque=7):
    return struct.pack(">BBHBBHII8x", 0x80, 0x00, len(key), 0, 0, 0, len(key), opaque) + key


def read_binary_reply(sock):
    data = b""
    while len(data) < 24 or len(data) < 24 + struct.unpack(">I", data[8:12])[0]:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the reply"
        data += chunk
    return data


def read_until(sock, end):
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def test_idle_clients_of_every_front_do_not_hold_the_stop(started, stubs):
    """A memcached text, a binary and a half-sent client, an HTTP keep-alive
    connection, a gRPC channel that made one call and one with an open health
    Watch: nothing is in flight, so the process exits at once, with 0."""
    port, http_port, grpc_port = free_port(), free_port(), free_port()
    k = started(["-worker-id=41", f"-port={port}", f"-http-port={http_port}", f"-grpc-port={grpc_port}",
                 "-threads=2"])
    for p in (port, http_port, grpc_port):
        wait_listening(p, k.proc)

    text = socket.create_connection(("127.0.0.1", port))
    text.sendall(b"get a\r\n")
    assert read_until(text, b"END\r\n").startswith(b"VALUE a 0 ")
    binary = socket.create_connection(("127.0.0.1", port))
    binary.sendall(binary_get())
    assert read_binary_reply(binary)[:2] == b"\x81\x00"
    partial = socket.create_connection(("127.0.0.1", port))
    partial.sendall(b"get a")  # no command completed: idle as well
    keep_alive = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    keep_alive.request("GET", "/id")
    response = keep_alive.getresponse()
    assert response.status == 200 and response.read()

    pb, rpc = stubs["katsubushi_pb2"], stubs["katsubushi_pb2_grpc"]
    health_pb, health_rpc = stubs["health_pb2"], stubs["health_pb2_grpc"]
    after_call = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    assert rpc.GeneratorStub(after_call).Fetch(pb.FetchRequest(), timeout=5).id > 0
    watching = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    watch = health_rpc.HealthStub(watching).Watch(health_pb.HealthCheckRequest(service=""), timeout=30)
    assert next(watch).status == health_pb.HealthCheckResponse.SERVING
    watch_ended = threading.Event()

    def drain_watch():
        try:
            for _ in watch:
                pass
        except grpc.RpcError:
            pass
        watch_ended.set()

    threading.Thread(target=drain_watch, daemon=True).start()
    time.sleep(0.1)  # every connection settled on the server's side

    try:
        code, elapsed = k.stop_timed()
        assert code == 0, k.output()
        assert elapsed < IDLE_EXIT_S, f"took {elapsed:.3f}s with nothing in flight"
        assert "Shutdown completed" in k.output()
        assert watch_ended.wait(5), "the health Watch stream was not ended"
        for s in (text, binary, partial):
            s.settimeout(2)
            assert s.recv(10) == b""
    finally:
        for s in (text, binary, partial):
            s.close()
        keep_alive.close()
        after_call.close()
        watching.close()


@pytest.mark.parametrize("lines", [50, 250])
def test_a_request_in_flight_is_answered_then_the_process_exits(started, lines):
    """A client that pipelines large gets and does not read: its replies are in
    flight when SIGTERM comes. They arrive whole, then the connection closes
    and the process exits 0, without waiting for the deadline. 50 gets (1.9 MB
    of replies) fit in the kernel's send buffer (4 MiB at most): the server has
    nothing left to write and waits for the reading; 250 (9.5 MB) do not: it
    is still writing when the stop comes."""
    port = free_port()
    k = started(["-worker-id=42", f"-port={port}", "-threads=1", "-shutdown-timeout=10s"])
    wait_listening(port, k.proc)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader
    client.connect(("127.0.0.1", port))
    line = b"get " + b" ".join(b"k%d" % i for i in range(1000)) + b"\r\n"
    client.setblocking(False)
    sent = 0
    batch = line * lines  # 38 KB of replies a line
    stalled_at = time.monotonic() + 0.5
    while time.monotonic() < stalled_at:
        try:
            sent += client.send(batch[sent:])
        except BlockingIOError:
            time.sleep(0.01)
        if sent == len(batch):
            break
    time.sleep(0.2)
    start = time.monotonic()
    k.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert k.proc.poll() is None, "exited with replies unsent"

    client.setblocking(True)
    client.settimeout(5)
    received = bytearray()
    while True:
        chunk = client.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    read_done = time.monotonic()
    code = k.proc.wait(timeout=5)
    exited = time.monotonic()
    print(f"in flight: {len(received)} bytes answered; exit {exited - read_done:.3f}s after the "
          f"client read them, {exited - start:.3f}s after SIGTERM")
    assert code == 0, k.output()
    replies = bytes(received).split(b"END\r\n")
    assert replies[-1] == b"", "the last reply was cut off"
    assert len(replies) - 1 >= 1
    assert all(r.count(b"VALUE ") == 1000 for r in replies[:-1])
    assert exited - read_done < 1.0
    client.close()


def test_connections_accepted_at_the_signal_do_not_hold_the_stop(started):
    """50 stops, each while a client connects as fast as it can and keeps every
    connection open: one accepted at the instant of the stop sweep and started
    after it would hold the stop until the deadline (5 s)."""
    times = []
    for i in range(50):
        port = free_port()
        k = started(["-worker-id=43", f"-port={port}", "-threads=2"], name=f"race{i}")
        wait_listening(port, k.proc)
        stop = threading.Event()
        held = []

        def connect_loop():
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=1)
                    s.sendall(b"get a\r\n")
                    held.append(s)
                except OSError:
                    pass

        t = threading.Thread(target=connect_loop)
        t.start()
        time.sleep(0.05)
        code, elapsed = k.stop_timed()
        stop.set()
        t.join()
        for s in held:
            s.close()
        k.kill()
        assert code == 0, k.output()
        times.append(elapsed)
    times.sort()
    print(f"connect-at-signal stops: median {times[25] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    # The bug waits the whole 5 s deadline; a loaded machine adds noise, not seconds.
    assert times[-1] < 2.5, f"a stop waited {times[-1]:.2f}s"


def test_stop_while_redis_is_down_at_start(started):
    dead = free_port()
    http_port = free_port()
    k = started([f"-redis=redis://127.0.0.1:{dead}/0?ns={NS}", "-min-worker-id=1", "-max-worker-id=3",
                 "-port=0", f"-http-port={http_port}", "-threads=1"])
    k.wait_output("cannot reach Redis")
    code, elapsed = k.stop_timed()
    assert code == 0, k.output()
    assert elapsed < STARTUP_EXIT_S


def test_stop_while_a_state_files_promise_is_waited_out(started, tmp_path):
    state = tmp_path / "state"
    promise = f"katsubushi-state 1 9 {int(time.time() * 1000) + 30_000}\n"
    state.write_text(promise)
    k = started(["-worker-id=9", f"-port={free_port()}", f"-state-file={state}"])
    k.wait_output("waiting for the clock to pass it")
    time.sleep(0.1)
    code, elapsed = k.stop_timed()
    assert code == 0, k.output()  # not killed by the signal (-15)
    assert elapsed < STARTUP_EXIT_S
    # Nothing was issued: the promise stands as it was.
    assert state.read_text() == promise


# The lease keeper does not block on a watermark (the generator refuses until
# the clock passes it while the keeper goes on renewing), so a stop is seen at
# once; before issue 16's fix it waited up to 5 s here.
def test_stop_while_a_leased_ids_watermark_is_waited_out(started, rds):
    """The only free id's previous holder issued up to 30 s from now: the
    lease is taken, then its watermark waited out. A stop then exits 0
    promptly and gives the id back."""
    far = int(time.time() * 1000) + 30_000
    for worker in (1, 2):
        rds.client.set("{%s:id:%d}:watermark" % (NS, worker), far)
    k = started([f"-redis=redis://127.0.0.1:{rds.port}/0?ns={NS}", "-min-worker-id=1", "-max-worker-id=2",
                 "-port=0", f"-http-port={free_port()}", "-threads=1"])
    deadline = time.monotonic() + 15
    held = []
    while time.monotonic() < deadline and not held:
        held = [w for w in (1, 2) if rds.client.exists("%s:id:%d" % (NS, w))]
        time.sleep(0.02)
    assert held, k.output()
    time.sleep(0.2)
    code, elapsed = k.stop_timed()
    assert code == 0, k.output()
    assert elapsed < STARTUP_EXIT_S
    assert not rds.client.exists("%s:id:%d" % (NS, held[0])), "the lease was not released"
