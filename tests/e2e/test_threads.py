"""The default thread count (-threads=0) follows the CPUs the process may use:
under `taskset -c 0` the server runs exactly as many threads as with
-threads=1, an explicit -threads=N wins over the affinity mask, and the
start-up log says how many and why. (The cgroup limit: unit-tested over fake
cgroup trees, and with podman --cpus=0.5 in scripts/container-test.)"""

import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import free_port, wait_listening

TASKSET = shutil.which("taskset")


def run_and_count(binary, args, pin=None):
    """Starts the server (memcached and HTTP), waits until both listen, and
    returns (threads in /proc/<pid>/task, the start-up log)."""
    port, http_port = free_port(), free_port()
    argv = [binary, "-worker-id=5", f"-port={port}", f"-http-port={http_port}", *args]
    if pin is not None:
        argv = [TASKSET, "-c", pin, *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        wait_listening(http_port, proc)
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    return threads, out.decode(errors="replace")


def logged_threads(log):
    m = re.search(r"(\d+) threads?: (.*)", log)
    assert m, log
    return int(m.group(1)), m.group(2).strip()


@pytest.mark.skipif(TASKSET is None, reason="taskset (util-linux) is not installed")
def test_pinned_to_one_cpu_runs_as_many_threads_as_threads_1(katsubushi_bin):
    pinned, log = run_and_count(katsubushi_bin, [], pin="0")
    one, _ = run_and_count(katsubushi_bin, ["-threads=1"])
    assert pinned == one, log
    assert logged_threads(log) == (1, "affinity mask of 1 CPU")


@pytest.mark.skipif(TASKSET is None, reason="taskset (util-linux) is not installed")
def test_an_explicit_thread_count_wins_over_the_affinity_mask(katsubushi_bin):
    pinned, log = run_and_count(katsubushi_bin, ["-threads=3"], pin="0")
    free, _ = run_and_count(katsubushi_bin, ["-threads=3"])
    one, _ = run_and_count(katsubushi_bin, ["-threads=1"])
    assert pinned == free, log
    assert pinned == one + 2 * 2  # two more io threads in each of the two fronts
    assert logged_threads(log) == (3, "-threads=3")


def test_unpinned_follows_the_affinity_mask_or_the_cgroup_limit(katsubushi_bin):
    threads, log = run_and_count(katsubushi_bin, [])
    one, _ = run_and_count(katsubushi_bin, ["-threads=1"])
    count, source = logged_threads(log)
    assert 1 <= count <= len(os.sched_getaffinity(0)), log
    assert source.startswith(("affinity mask of", "cgroup cpu")), log
    assert threads == one + 2 * (count - 1), log
