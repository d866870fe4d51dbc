"""Helpers shared by the side-by-side benchmark scripts."""

import os
import random
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_handed_out = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port nothing is bound to, below the kernel's ephemeral range: a port
    from that range can be taken as the local end of some outgoing connection
    between this check and the server's bind (seen on the shared machine).
    Never the same port twice in one process."""
    high = _ephemeral_low()
    low = 10000 if high > 11000 else 1024
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in [{low}, {high})")


def wait_port(port, timeout=10.0, proc=None):
    """Waits until something accepts on 127.0.0.1:port; gives up early if
    proc (the server's Popen) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for port {port} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def stop_process(proc, timeout):
    """Stops a server this script started: SIGTERM, then SIGKILL if it
    outlives `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def cpu_seconds(pid):
    """utime + stime of every thread of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def go_katsubushi():
    """go-katsubushi's binary for side-by-side runs: ../shared/peer/katsubushi
    from the main checkout (or from a worktree under /work/wt/), else ""."""
    for path in (os.path.join(ROOT, "..", "shared", "peer", "katsubushi"),
                 os.path.join(ROOT, "..", "..", "shared", "peer", "katsubushi")):
        if os.access(path, os.X_OK):
            return os.path.normpath(path)
    return ""
