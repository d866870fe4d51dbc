"""Stops bounded by what is really in flight (issue 20).

Clients hammer the memcached and HTTP ports from a few threads while SIGTERM
arrives. A client that sends a request and closes without reading its reply
has gone: nothing it asked for can still be delivered, so the stop must not
wait for it (the bug: the server polled the send queue of a connection the
peer had reset, which never empties, until -shutdown-timeout). Clients that
read their replies and clients that never send are the controls. Each kind
gets 50 stops, each timed from the signal to the exit.
"""

import signal
import socket
import threading
import time

import pytest
from conftest import TIME_SCALE, free_port, wait_listening
from test_shutdown import Katsubushi

STOPS = 50
# The bound on an idle machine. The bug waits the whole
# -shutdown-timeout (5 s), so this catches it with a wide margin (also at
# 1.2 s, the bound of a sanitizer build).
STOP_EXIT_S = 0.3 * TIME_SCALE
# Load before the signal: enough for every thread to be mid-loop.
LOAD_S = 0.05

MEMCACHE_GET = b"get x\r\n"
HTTP_GET = b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n"


def close_without_reading(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(request)


def read_reply(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(request)
        s.recv(4096)


def never_send(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


PEERS = {
    "close_without_reading": close_without_reading,
    "read_reply": read_reply,
    "never_send": never_send,
}


@pytest.mark.parametrize("peer", list(PEERS))
def test_stop_under_a_connect_send_close_loop(katsubushi_bin, tmp_path, peer):
    """Two memcached threads and one HTTP thread run `peer` in a tight loop
    across SIGTERM; every one of 50 stops exits 0 within STOP_EXIT_S."""
    client = PEERS[peer]
    times = []
    for i in range(STOPS):
        port, http_port = free_port(), free_port()
        k = Katsubushi(katsubushi_bin, tmp_path,
                       ["-worker-id=45", f"-port={port}", f"-http-port={http_port}", "-threads=2"],
                       name=f"{peer}{i}")
        try:
            wait_listening(port, k.proc)
            wait_listening(http_port, k.proc)
            stop = threading.Event()

            def loop(port, request):
                while not stop.is_set():
                    try:
                        client(port, request)
                    except OSError:
                        pass

            threads = [threading.Thread(target=loop, args=args)
                       for args in ((port, MEMCACHE_GET), (port, MEMCACHE_GET), (http_port, HTTP_GET))]
            for t in threads:
                t.start()
            time.sleep(LOAD_S)
            code, elapsed = k.stop_timed(signal.SIGTERM)
            stop.set()
            for t in threads:
                t.join()
            assert code == 0, k.output()
            times.append(elapsed)
        finally:
            k.kill()
    times.sort()
    print(f"{peer}: {STOPS} stops, median {times[STOPS // 2] * 1000:.0f} ms, "
          f"worst {times[-1] * 1000:.0f} ms")
    slow = [t for t in times if t >= STOP_EXIT_S]
    assert not slow, f"{len(slow)} of {STOPS} stops took {', '.join(f'{t:.2f}s' for t in slow)}"
