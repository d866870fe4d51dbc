"""SIGTERM as soon as the server accepts connections (an orchestrator scaling
in right after a start) is a normal shutdown: exit 0, not death by the
signal's default action, which skips the drain and the lease release."""

import signal
import socket
import subprocess
import time

from conftest import free_port

STARTS = 20  # before the fix about 40% of these died by the signal


def test_sigterm_right_after_the_port_accepts_exits_zero(katsubushi_bin):
    codes = []
    for _ in range(STARTS):
        port = free_port()
        proc = subprocess.Popen([katsubushi_bin, "-worker-id=1", f"-port={port}", "-log-level=error"])
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.0002)
            proc.send_signal(signal.SIGTERM)
            codes.append(proc.wait(timeout=10))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes == [0] * STARTS
