"""libkatsubushi.so through Python ctypes, with a real redis-server: a lease
acquired lazily, confirmed at each invocation, given back at close, and a
library user frozen past its lease that never issues a duplicate."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import kb_ctypes
from conftest import ms_of, worker_of
from tcp_relay import TcpRelay
from test_redis_lease import NS, RausParticipant, rds, wait_for  # noqa: F401  (rds is a fixture)


@pytest.fixture(scope="module")
def lib(katsubushi_lib):
    return kb_ctypes.load(katsubushi_lib)


def test_static_worker_id_and_decode(lib):
    assert lib.kb_abi_version() == 1
    gen = kb_ctypes.Generator(lib, worker_id=33)
    status, ids = gen.next_ids(1000)
    assert status == kb_ctypes.KB_OK
    assert ids == sorted(ids) and len(set(ids)) == 1000
    parts = kb_ctypes.KbIdParts()
    assert lib.kb_decode(gen.handle, ids[0], parts) == kb_ctypes.KB_OK
    assert parts.worker_id == 33 and parts.unix_millis == ms_of(ids[0])
    assert gen.next_ids(5000)[0] == kb_ctypes.KB_INVALID_ARGUMENT
    assert gen.close() == kb_ctypes.KB_OK


def test_lease_is_lazy_confirmed_per_invocation_and_released(lib, rds):
    gen = kb_ctypes.Generator(lib, redis_url=rds.url(), min_id=20, max_id=30)
    # kb_open did no network I/O: nothing in Redis, no worker id yet.
    assert rds.client.keys(f"{NS}:*") == []
    assert gen.worker_id()[0] == kb_ctypes.KB_UNAVAILABLE
    status, first = gen.next_id()
    assert status == kb_ctypes.KB_OK
    worker = worker_of(first)
    assert 20 <= worker <= 30
    key = f"{NS}:id:{worker}"
    assert rds.client.exists(key) == 1
    assert 0 < rds.client.pttl(key) <= 60_000  # the Lambda default TTL

    # An invocation re-confirms (the compare-and-set extends the key).
    rds.client.pexpire(key, 5_000)
    assert gen.invocation_begin() == kb_ctypes.KB_OK
    assert rds.client.pttl(key) > 50_000
    # A stolen key is noticed at the next invocation: a new id, never the old.
    rds.client.set(key, "someone-else")
    assert gen.invocation_begin() == kb_ctypes.KB_OK
    status, moved = gen.next_id()
    assert status == kb_ctypes.KB_OK and worker_of(moved) != worker
    assert rds.client.get(key) == "someone-else"

    new_key = f"{NS}:id:{worker_of(moved)}"
    assert gen.close() == kb_ctypes.KB_OK
    assert rds.client.exists(new_key) == 0  # compare-and-delete on close
    assert int(rds.client.get("{%s:id:%d}:watermark" % (NS, worker_of(moved)))) >= ms_of(moved)


def test_calls_after_close_say_closed(lib, rds):
    gen = kb_ctypes.Generator(lib, redis_url=rds.url(), min_id=20, max_id=30)
    status, first = gen.next_id()
    assert status == kb_ctypes.KB_OK
    assert gen.close() == kb_ctypes.KB_OK
    assert rds.client.keys(f"{NS}:id:*") == []  # released
    # Every call on the closed handle, a second close (a finalizer) too.
    assert gen.next_id()[0] == kb_ctypes.KB_CLOSED
    assert b"closed" in lib.kb_last_error()
    assert gen.next_ids(3)[0] == kb_ctypes.KB_CLOSED
    assert gen.worker_id()[0] == kb_ctypes.KB_CLOSED
    assert gen.invocation_begin() == kb_ctypes.KB_CLOSED
    assert lib.kb_decode(gen.handle, first, kb_ctypes.KbIdParts()) == kb_ctypes.KB_CLOSED
    assert gen.close() == kb_ctypes.KB_CLOSED
    assert rds.client.keys(f"{NS}:id:*") == []  # nothing acquired again


def test_redis_unreachable_refuses_rather_than_guesses(lib, rds):
    gen = kb_ctypes.Generator(lib, redis_url=rds.url(), min_id=1, max_id=3)
    assert gen.next_id()[0] == kb_ctypes.KB_OK
    rds.stop(signal.SIGKILL)
    assert gen.invocation_begin() == kb_ctypes.KB_UNAVAILABLE
    assert gen.next_id()[0] == kb_ctypes.KB_UNAVAILABLE
    assert b"Redis" in lib.kb_last_error()


def set_calls(rds):
    return rds.client.info("commandstats").get("cmdstat_set", {}).get("calls", 0)


def test_exhausted_range_is_scanned_once_per_backoff_window(lib, rds):
    holders = [kb_ctypes.Generator(lib, redis_url=rds.url(), min_id=1, max_id=2) for _ in range(2)]
    assert all(h.next_id()[0] == kb_ctypes.KB_OK for h in holders)
    gen = kb_ctypes.Generator(lib, redis_url=rds.url(), min_id=1, max_id=2)
    before = set_calls(rds)
    started = time.monotonic()
    calls = 0
    while time.monotonic() - started < 1.0:
        assert gen.next_id()[0] == kb_ctypes.KB_UNAVAILABLE
        assert b"no free worker id" in lib.kb_last_error()
        calls += 1
    scans = set_calls(rds) - before
    # Windows of 100, 200, 400 ms (then 800): at most 4 scans of 2 ids in 1 s,
    # whatever the number of calls (one scan per call would be 2 per call).
    assert calls > 1000
    assert 2 <= scans <= 8, scans
    # A freed id is taken at the next scan, within the current window.
    holders[0].close()
    freed = time.monotonic()
    while gen.next_id()[0] != kb_ctypes.KB_OK:
        assert time.monotonic() - freed < 2.5
        time.sleep(0.005)
    assert gen.close() == kb_ctypes.KB_OK
    holders[1].close()


class SetReplyDroppingRelay(TcpRelay):
    """A relay that, while armed, lets the next SET reach Redis but drops its
    reply: the command is applied and its reply lost (a network fault on the
    way back), which neither a stopped Redis nor a paused one can show."""

    armed = False
    _dropping = False

    def _forward(self, source):
        if source in self._peers:
            upstream = source.getpeername()[1] == self.upstream_port
            if upstream and self._dropping:
                self._dropping = self.armed = False
                try:
                    if source.recv(65536):
                        return
                except OSError:
                    pass
            elif not upstream and self.armed:
                data = source.recv(65536, socket.MSG_PEEK)
                self._dropping = b"\r\nSET\r\n" in data
        super()._forward(source)


def test_a_set_whose_reply_was_lost_is_given_back(lib, rds):
    relay = SetReplyDroppingRelay(rds.port)
    gen = kb_ctypes.Generator(lib, redis_url=f"redis://127.0.0.1:{relay.port}/0?ns={NS}", min_id=1, max_id=3)
    # The SET NX of the first acquisition reaches Redis and is applied; its
    # reply never comes (timeout). The key names this generator's first uuid,
    # and nothing was issued under it.
    relay.armed = True
    assert gen.next_id()[0] == kb_ctypes.KB_UNAVAILABLE
    assert wait_for(lambda: len(rds.client.keys(f"{NS}:id:*")) == 1, 5)
    (stale,) = rds.client.keys(f"{NS}:id:*")
    stale_uuid = rds.client.get(stale)
    # The next acquisition gives that key back before taking one.
    deadline = time.monotonic() + 5
    while (status := gen.next_id())[0] != kb_ctypes.KB_OK:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    keys = rds.client.keys(f"{NS}:id:*")
    assert len(keys) == 1, keys
    assert rds.client.get(keys[0]) != stale_uuid
    assert keys[0] == f"{NS}:id:{worker_of(status[1])}"
    assert gen.close() == kb_ctypes.KB_OK
    assert rds.client.keys(f"{NS}:id:*") == []
    relay.close()


def run_user(lib_path, rds, min_id, max_id, ttl_ms, duration):
    return subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), "kb_ctypes.py"), lib_path,
         rds.url(), str(min_id), str(max_id), str(ttl_ms), str(duration)],
        stdout=subprocess.PIPE, text=True)


def parse(output):
    issued, errors = [], []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "ok":
            issued.append((float(parts[0]), int(parts[2])))
        elif len(parts) == 3 and parts[1] == "err":
            errors.append((float(parts[0]), int(parts[2])))
    return issued, errors


def test_frozen_user_past_its_lease_never_duplicates(katsubushi_lib, rds):
    lib_path = katsubushi_lib
    go = RausParticipant(rds.client, [6])  # id 6 is a Go instance's
    try:
        first = run_user(lib_path, rds, 5, 6, 3000, 12)
        assert wait_for(lambda: rds.client.exists(f"{NS}:id:5") == 1, 5)
        time.sleep(0.3)
        first.send_signal(signal.SIGSTOP)  # a Lambda environment frozen between events
        # Once Redis frees id 5, another library user takes it.
        assert wait_for(lambda: rds.client.exists(f"{NS}:id:5") == 0, 5)
        second = run_user(lib_path, rds, 5, 6, 3000, 3)
        assert wait_for(lambda: rds.client.exists(f"{NS}:id:5") == 1, 5)
        time.sleep(0.5)
        first.send_signal(signal.SIGCONT)
        thawed_at = time.time() * 1000
        second_out, _ = second.communicate(timeout=30)
        second_closed_at = time.time() * 1000
        first_out, _ = first.communicate(timeout=30)
    finally:
        first.kill()
        go.stop()

    first_ids, first_errors = parse(first_out)
    second_ids, _ = parse(second_out)
    assert first_ids and second_ids
    assert all(worker_of(i) == 5 for _, i in second_ids)
    # Thawed while the other user held id 5 (and a Go instance id 6): the
    # first call re-validated, found the lease lost and no id free, and
    # refused. Nothing was issued while the other held the id.
    assert not [i for t, i in first_ids if thawed_at < t < second_closed_at - 100]
    assert any(code == kb_ctypes.KB_UNAVAILABLE for t, code in first_errors if t > thawed_at)
    # Once the other released id 5, the first may take it again, with a new
    # lease and above the other's watermark.
    later = [i for t, i in first_ids if t > thawed_at]
    assert all(ms_of(i) > max(ms_of(j) for _, j in second_ids) for i in later)
    everything = [i for _, i in first_ids + second_ids]
    assert len(everything) == len(set(everything)), "an ID was issued twice"


def test_the_python_binding_of_the_lambda_c_layer(lib, rds):
    # python/katsubushi.py, as a function imports it (KATSUBUSHI_LIB names the library).
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "python"))
    try:
        import katsubushi
    finally:
        sys.path.pop(0)
    with katsubushi.Generator(redis_url=rds.url(), min_worker_id=50, max_worker_id=59) as gen:
        gen.invocation_begin()
        ids = [gen.next_id() for _ in range(10)] + gen.next_ids(100)
        assert ids == sorted(ids) and len(set(ids)) == 110
        worker = gen.worker_id()
        assert 50 <= worker <= 59
        assert gen.decode(ids[0])[1] == worker and gen.decode(ids[0])[0] == ms_of(ids[0])
        with pytest.raises(katsubushi.Error) as bad:
            gen.next_ids(0)
        assert bad.value.status == katsubushi.INVALID_ARGUMENT
    assert rds.client.keys(f"{NS}:id:*") == []  # released on leaving the block
    with pytest.raises(katsubushi.Error) as closed:
        gen.next_id()
    assert closed.value.status == katsubushi.CLOSED
    gen.close()  # again: nothing
    # Redis gone: UNAVAILABLE, as an exception with the library's message.
    other = katsubushi.Generator(redis_url=rds.url(), min_worker_id=50, max_worker_id=59)
    rds.stop(signal.SIGKILL)
    with pytest.raises(katsubushi.Error) as down:
        other.next_id()
    assert down.value.status == katsubushi.UNAVAILABLE and "Redis" in down.value.message
    del other  # the finalizer closes quietly
