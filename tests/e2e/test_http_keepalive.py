"""HTTP keep-alive behind a load balancer (issue 20).

AWS's ALB keeps idle connections to its targets for 60 s and a target must
keep them longer, or the ALB may send a request onto a connection the target
is closing and answer its client 502. The wait for the next request follows
-idle-timeout (10 min by default); a request whose first byte has arrived
must still be complete within 30 s. The three cases run concurrently, so the
test costs the longest of them (~65 s), not their sum.
"""

import socket
import threading
import time

from conftest import free_port, wait_listening
from test_shutdown import Katsubushi

GET = b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n"
ALB_IDLE_S = 60
IDLE_AFTER_REQUEST_S = ALB_IDLE_S + 5
REQUEST_TIMEOUT_S = 30  # HttpOptions::kRequestTimeout


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        body += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200 "), head
    return body


def closed_after(sock, limit_s):
    """Seconds until the server closes `sock` (reading nothing else), or None."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        data = sock.recv(4096)
    except socket.timeout:
        return None
    except ConnectionResetError:
        data = b""
    assert data == b"", f"unexpected bytes {data!r}"
    return time.monotonic() - start


def test_keep_alive_waits_follow_the_idle_timeout(katsubushi_bin, tmp_path):
    default_port, short_port = free_port(), free_port()
    default = Katsubushi(katsubushi_bin, tmp_path, ["-worker-id=47", "-port=0", f"-http-port={default_port}"],
                         name="default")
    short = Katsubushi(katsubushi_bin, tmp_path,
                       ["-worker-id=48", "-port=0", f"-http-port={short_port}", "-idle-timeout=2s"], name="short")
    results = {}

    def idle_then_request():
        with socket.create_connection(("127.0.0.1", default_port), timeout=10) as s:
            s.sendall(GET)
            read_response(s)
            time.sleep(IDLE_AFTER_REQUEST_S)
            s.sendall(GET)
            results["served after idle"] = int(read_response(s))

    def trickle():
        with socket.create_connection(("127.0.0.1", default_port), timeout=10) as s:
            start = time.monotonic()
            s.settimeout(1)
            # One byte a second: the whole request would take well over 31 s.
            request = GET[:-4] + b"\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
            for byte in request:
                try:
                    s.sendall(bytes([byte]))
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
            results["trickle closed at"] = time.monotonic() - start

    def short_idle():
        with socket.create_connection(("127.0.0.1", short_port), timeout=10) as s:
            s.sendall(GET)
            read_response(s)
            results["short idle closed at"] = closed_after(s, 10)

    try:
        wait_listening(default_port, default.proc)
        wait_listening(short_port, short.proc)
        threads = [threading.Thread(target=f) for f in (idle_then_request, trickle, short_idle)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(IDLE_AFTER_REQUEST_S + 30)
        print(results)
        assert results.get("served after idle", 0) > 0, (results, default.output())
        assert REQUEST_TIMEOUT_S - 1 <= results["trickle closed at"] < REQUEST_TIMEOUT_S + 2, results
        assert results["short idle closed at"] is not None
        assert 1.8 <= results["short idle closed at"] < 3.0, results
    finally:
        default.kill()
        short.kill()
