"""-log-format=json: every line the real binary writes is one JSON object,
whatever the messages carry (issue 12). Text from outside reaches the log in
two places: broadcast payloads on <ns>:broadcast (from any Redis client) and
Redis error replies."""

import json
import signal
import socket
import subprocess
import threading
import time

from conftest import free_port
from test_redis_lease import RedisServer

NS = "kblog"
# Quotes, a backslash, newlines, a forged field, control bytes and bytes that
# are not UTF-8: none of it may end the line, the string or the object.
HOSTILE = b'x"y\\z\n{"level":"fatal","message":"forged"}\r\n\x01\x1b[31m \xff\xfe\xc3 end'


def run_json_server(binary, redis_url, tmp_path, until, timeout=15):
    """Starts a server leasing its id from `redis_url` with -log-format=json,
    calls until() (which returns once what it waits for happened), stops it;
    returns stderr's lines."""
    log_path = tmp_path / f"json-{free_port()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "-log-format=json", "-threads=1", f"-redis={redis_url}",
                                 "-min-worker-id=1", "-max-worker-id=3", "-port=0",
                                 f"-http-port={free_port()}"],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            until(proc, log_path)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
    return log_path.read_bytes().split(b"\n")[:-1]


def parse_every_line(lines):
    objects = []
    for raw in lines:
        text = raw.decode("utf-8")  # strict: invalid UTF-8 in a line fails here
        obj = json.loads(text)
        assert isinstance(obj, dict), text
        assert set(obj) == {"time", "level", "logger", "message"}, text
        objects.append(obj)
    return objects


def wait_for_log(log_path, needle, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log_path.read_bytes():
            return
        assert proc.poll() is None, log_path.read_bytes()
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged: {log_path.read_bytes()!r}")


def test_hostile_broadcast_payloads_keep_every_line_json(katsubushi_bin, tmp_path):
    rds = RedisServer()
    try:
        client = rds.client

        def publish_while_it_listens(proc, log_path):
            # The server listens to the broadcast for 3 s before choosing an id.
            wait_for_log(log_path, b"Waiting for worker-id", proc)
            deadline = time.monotonic() + 5
            while b"ignoring a broadcast" not in log_path.read_bytes():
                assert time.monotonic() < deadline, log_path.read_bytes()
                client.publish(f"{NS}:broadcast", HOSTILE)
                time.sleep(0.1)
            wait_for_log(log_path, b"Assigned worker-id", proc)

        lines = run_json_server(katsubushi_bin, rds.url(NS), tmp_path, publish_while_it_listens)
    finally:
        rds.stop(signal.SIGKILL)
    objects = parse_every_line(lines)
    ignored = [o["message"] for o in objects if o["message"].startswith("ignoring a broadcast")]
    assert ignored, objects
    # The payload survives whole, its invalid bytes as U+FFFD.
    assert ignored[0].endswith(HOSTILE.decode("utf-8", errors="replace")), ignored[0]
    assert not any(o["message"] == "forged" for o in objects)


class HostileRedis:
    """Answers every command with an error whose text no real Redis would let
    us choose: a fake is the only way to feed these bytes to the server."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        conns = []
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
                conn.settimeout(0.1)
                conns.append(conn)
            except OSError:
                pass
            for c in list(conns):
                try:
                    if c.recv(65536):
                        c.sendall(b"-ERR " + HOSTILE.replace(b"\r\n", b" \n") + b"\r\n")
                    else:
                        conns.remove(c)
                        c.close()
                except socket.timeout:
                    pass
                except OSError:
                    conns.remove(c)
        for c in conns:
            c.close()
        self.sock.close()

    def stop(self):
        self.stopping = True
        self.thread.join()


def test_hostile_redis_error_replies_keep_every_line_json(katsubushi_bin, tmp_path):
    fake = HostileRedis()
    try:
        def until_the_error_is_logged(proc, log_path):
            wait_for_log(log_path, b"cannot reach Redis", proc)

        # db 1: the server sends SELECT and logs the error reply it gets.
        lines = run_json_server(katsubushi_bin, f"redis://127.0.0.1:{fake.port}/1?ns={NS}", tmp_path,
                                until_the_error_is_logged)
    finally:
        fake.stop()
    objects = parse_every_line(lines)
    errors = [o["message"] for o in objects if "cannot reach Redis" in o["message"]]
    assert errors and "forged" in errors[0] and "\n" in errors[0], objects
    assert not any(o["message"] == "forged" for o in objects)
