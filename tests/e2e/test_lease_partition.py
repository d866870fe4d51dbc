"""Issue 16: a holder cut off from Redis until its fence (partitioned, or
frozen by SIGSTOP) and a successor whose wall clock is behind: no ID is ever
issued twice.

Instance A leases worker id 700 of 700..701 (701 is held by a stranger) with a
2 s lease, through a TCP relay, and serves a busy memcached client. The relay
is blackholed (or A is stopped); instance B, same namespace and range, reaches
Redis directly with its wall clock N s behind A's (libfaketime, monotonic clock
untouched, as on a host whose NTP is off). B takes id 700 once A's key expires
and issues under it; every ID of both is compared.

What makes this hold is the watermark as a promise: A records, before it may
issue up to it, the latest time it may stamp under the lease just confirmed,
and B waits until its own clock passes that. So B's first ID under 700 is
later in ID time than A's last one, whatever the skew: the tests assert that
ordering as well as the duplicate count, which depends on both clients having
asked in the same millisecond.
"""

import datetime
import glob
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

import kb_ctypes
from conftest import free_port, memcache_get, ms_of, wait_listening, worker_of
from tcp_relay import TcpRelay
from test_c_abi_lease import parse
from test_redis_lease import rds, servers, wait_for  # noqa: F401  (fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER, TAKEN = 700, 701
# -lease-expiry: A's fence comes 0.978 s after the renewal it last sent, its
# key expires 2 s after it, and it renews every 333 ms (a sixth of the expiry).
LEASE_EXPIRY_S = 2
# The embedded lease's TTL (its minimum): it renews synchronously past a third
# of it, so its fence is 0.667 s after its last confirmation.
EMBEDDED_TTL_MS = 2000
# kDiscoveryTime: the server listens to the broadcast this long before each
# acquisition attempt; a failed attempt backs off 0.2-0.3 s before the next.
DISCOVERY_S = 3.0
# How long B issues under 700 before the IDs are compared. The IDs A issued
# past the watermark it last recorded span at most its fence horizon (< 1 s),
# and a successor that wrongly trusts that watermark re-issues them in its
# first second.
B_ISSUE_S = 2.0
KEYS_PER_GET = 100


def successor_bound_s(skew_s):
    """Real seconds from the cut until B issues under 700, at most. A's key
    expires <= 2 s after the cut (A renewed before it); B's first acquisition
    comes after 3 s of discovery and one more round (3.3 s) covers an attempt
    that just missed the expiry; then B waits out the skew plus A's promise
    (< 1 s past A's last renewal); 3 s of slack for a loaded 2-core machine."""
    return LEASE_EXPIRY_S + 2 * (DISCOVERY_S + 0.3) + skew_s + 1 + 3


def clock_text(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def libfaketime():
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime.so.1 not found: install the Debian package faketime (scripts/install-deps)")
    return found[0]


def behind_env(skew_s):
    """The environment of a process whose wall clock is skew_s behind ours.

    Under a sanitizer build, CMakeLists.txt preloads the ASan runtime for the
    library's Python host. libfaketime goes before it: with ASan first, an
    uninstrumented host (Python) deadlocks at start, libfaketime's constructor
    calling dlsym (which mallocs) while ASan initialises in its own. ASan then
    has to be told not to insist on coming first; it still initialises before
    anything it instruments runs."""
    env = dict(os.environ)
    sanitizer_runtimes = os.environ.get("LD_PRELOAD")
    env["LD_PRELOAD"] = ":".join(p for p in (libfaketime(), sanitizer_runtimes) if p)
    if sanitizer_runtimes:
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
    env["FAKETIME"] = f"-{skew_s}s"
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return env


# The ID's time read just after its reply: off by the reply latency and the
# truncation to ms. 1 s is far above that even on a loaded machine and far
# below the 12 s skew that must show.
CLOCK_CHECK_TOLERANCE_MS = 1000


def assert_clock_behind(what, id_ms, real_ms, skew_s):
    offset = id_ms - real_ms
    assert abs(offset + skew_s * 1000) < CLOCK_CHECK_TOLERANCE_MS, (
        f"libfaketime does not reach {what}: its IDs are {offset:.0f} ms off real time, "
        f"not -{skew_s * 1000} ms")


def check_faketime_reaches_binary(binary, env, skew_s):
    port = free_port()
    proc = subprocess.Popen([binary, "-worker-id=5", f"-port={port}", "-threads=1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        try:
            wait_listening(port, proc)
        except RuntimeError:
            proc.kill()
            pytest.fail(f"katsubushi under libfaketime did not start: {proc.communicate()[0]!r}")
        id_ = memcache_get(port)
        real_ms = time.time() * 1000
        assert_clock_behind("the katsubushi binary", ms_of(id_), real_ms, skew_s)
    finally:
        proc.kill()
        proc.wait()


def check_faketime_reaches_library(lib_path, env, skew_s):
    code = ("import sys, kb_ctypes\n"
            "g = kb_ctypes.Generator(kb_ctypes.load(sys.argv[1]), worker_id=5)\n"
            "print(g.next_id()[1])\n")
    r = subprocess.run([sys.executable, "-c", code, lib_path], env=env, cwd=HERE,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"a library user under libfaketime failed: {r.stderr}"
    assert_clock_behind("libkatsubushi.so", ms_of(int(r.stdout.split()[-1])), time.time() * 1000, skew_s)


class IdStream:
    """A busy memcached text client: a `get` of KEYS_PER_GET keys after
    another, keeping every ID and the real time its answer came."""

    def __init__(self, port):
        self.port = port
        self.batches = []  # (real ms of the reply, [ids])
        self.refusals = 0
        self.sock = None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        request = ("get " + " ".join(f"k{i}" for i in range(KEYS_PER_GET)) + "\r\n").encode()
        while not self.stop_event.is_set():
            if self.sock is None:
                try:
                    # A frozen server answers when thawed: wait for it.
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                except OSError:
                    time.sleep(0.05)
                    continue
            try:
                self.sock.sendall(request)
                reply = b""
                while not (reply.endswith(b"END\r\n") or
                           (reply.endswith(b"\r\n") and not reply.startswith(b"VALUE"))):
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    reply += chunk
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                continue
            if reply.startswith(b"VALUE"):
                self.batches.append((time.time() * 1000, [int(x) for x in reply.split(b"\r\n")[1:-2:2]]))
                # Each reply covers one ms; a pause this short still asks in
                # most ms while leaving CPU to the two servers.
                time.sleep(0.0005)
            else:
                # Refused (no lease, or waiting out a promise): ask less often.
                # A first ID seen up to 5 ms late cannot hide a re-issue,
                # which spans up to A's fence horizon (~1 s).
                self.refusals += 1
                time.sleep(0.005)

    def ids(self):
        return [i for _, batch in list(self.batches) for i in batch]

    def first_issue_ms(self, worker=None):
        """Real time of the first reply with an ID (under `worker`), or None."""
        for t, batch in list(self.batches):
            if worker is None or worker_of(batch[0]) == worker:
                return t
        return None

    def stop(self):
        self.stop_event.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=10)
        return self.ids()


def hold_taken_id(rds, ns):
    """Worker id 701 held by a stranger for longer than any test runs."""
    assert rds.client.set(f"{ns}:id:{TAKEN}", str(uuid.uuid4()), ex=600, nx=True)


def start_instance(servers, redis_url, env=None):
    port = free_port()
    # A later flag wins (as Go's flag package): -port here replaces -port=0.
    s = servers(redis_url, min_id=WORKER, max_id=TAKEN, env=env,
                extra=[f"-lease-expiry={LEASE_EXPIRY_S}s", f"-port={port}"])
    s.memcache_port = port
    return s


def wait_issuing(stream, server, seconds=1.0):
    """A issued under 700 for `seconds` (so that it renewed a few times)."""
    assert wait_for(lambda: stream.first_issue_ms() is not None, 20), server.output()
    first = stream.first_issue_ms()
    assert worker_of(stream.batches[0][1][0]) == WORKER, "A did not get id 700"
    time.sleep(max(0.0, first / 1000 + seconds - time.time()))


class Successor:
    """Watches id 700 change hands in Redis and B's stream, from the cut until
    B has issued for B_ISSUE_S or the bound passes; meanwhile asks B's
    /healthz what it says while it waits."""

    def __init__(self, rds, ns, a_owner, server, stream, bound_s, cut_ms):
        self.taken_ms = self.watermark = None
        self.health = []  # (real ms, status, body) after B took 700, until it issued
        key = f"{ns}:id:{WORKER}"
        deadline = cut_ms / 1000 + bound_s
        while time.time() < deadline:
            if self.taken_ms is None:
                owner = rds.client.get(key)
                if owner is not None and owner != a_owner:
                    self.taken_ms = time.time() * 1000
                    self.watermark = rds.client.get("{%s}:watermark" % key)
            first = stream.first_issue_ms()
            if first is not None and time.time() * 1000 - first >= B_ISSUE_S * 1000:
                break
            if self.taken_ms is not None and first is None:
                status, body = server.request("/healthz")
                self.health.append((time.time() * 1000, status, body.strip()[:120]))
            time.sleep(0.05)
        self.first_issue_ms = stream.first_issue_ms()
        self.first_issue_ms_700 = stream.first_issue_ms(WORKER)
        # What /healthz said while B waited. A refused client asks again
        # within 5 ms, so an answer received 250 ms before the first ID was
        # given before B could issue, unless a reply took over 245 ms.
        end = self.first_issue_ms if self.first_issue_ms is not None else float("inf")
        self.health_while_waiting = sorted({(st, b) for t, st, b in self.health if t < end - 250}, key=str)


def compare(label, a_ids, b_ids, cut_ms, successor=None, b_log=""):
    """Prints the figures of one run; returns (duplicates, A's last ms under
    700, B's first ms under 700)."""
    everything = a_ids + b_ids
    duplicates = len(everything) - len(set(everything))
    a_700 = [ms_of(i) for i in a_ids if worker_of(i) == WORKER]
    b_700 = [ms_of(i) for i in b_ids if worker_of(i) == WORKER]
    a_last = max(a_700) if a_700 else None
    b_first = min(b_700) if b_700 else None
    shared_ms = len(set(a_700) & set(b_700))
    lines = [f"\n{label}: IDs from A {len(a_ids)}, from B {len(b_ids)} ({len(b_700)} under {WORKER}); "
             f"duplicates {duplicates} (ms stamped by both under {WORKER}: {shared_ms})"]
    if a_last is not None and b_first is not None:
        lines.append(f"  A's last ID {clock_text(a_last)} (A's clock), B's first under {WORKER} "
                     f"{clock_text(b_first)} (B's clock): {b_first - a_last:+d} ms")
    if successor is not None:
        if successor.taken_ms is not None:
            lines.append(f"  B took {WORKER} {(successor.taken_ms - cut_ms) / 1000:.1f} s after the cut; "
                         f"watermark then {successor.watermark}"
                         + (f" ({clock_text(int(successor.watermark))})" if successor.watermark else ""))
        if successor.first_issue_ms_700 is not None and successor.taken_ms is not None:
            lines.append(f"  B's first ID under {WORKER} {(successor.first_issue_ms_700 - successor.taken_ms) / 1000:.1f} s "
                         f"after it took the id, {(successor.first_issue_ms_700 - cut_ms) / 1000:.1f} s after the cut")
    if successor is not None and successor.health_while_waiting:
        lines.append(f"  B's /healthz while waiting: {successor.health_while_waiting}")
    for line in b_log.splitlines():
        if "watermark" in line or "lease" in line or "Assigned" in line:
            lines.append("  B: " + line.strip())
    print("\n".join(lines))
    return duplicates, a_last, b_first


def assert_never_reissued(duplicates, a_last, b_first):
    assert duplicates == 0, f"{duplicates} IDs issued twice"
    assert a_last is not None, "A issued nothing under the id"
    if b_first is not None:
        assert b_first > a_last, "B stamped under the id at or before A's last ID"


def assert_waited_visibly(successor):
    """While B held the id but could not issue under it, /healthz said so."""
    healthy = [h for h in successor.health_while_waiting if h[0] != 503]
    assert not healthy, f"B's /healthz while it could not issue: {healthy}"


def assert_no_lease_lost(b_log):
    """Nothing but B touched id 700 after A's key expired: a lease B lost was
    lost to its own waiting."""
    lost = [line for line in b_log.splitlines() if "lease lost" in line]
    assert not lost, f"B lost a lease nobody else touched: {lost}"


@pytest.fixture
def relay(rds):
    r = TcpRelay(rds.port)
    yield r
    r.close()


@pytest.mark.parametrize("skew_s", [0, 12, 60])
def test_partitioned_holder_ids_are_never_reissued_by_a_successor_behind(
        skew_s, katsubushi_bin, rds, relay, servers):
    env = behind_env(skew_s)
    check_faketime_reaches_binary(katsubushi_bin, env, skew_s)
    ns = f"partition-{uuid.uuid4().hex[:8]}"
    hold_taken_id(rds, ns)
    a = start_instance(servers, f"redis://127.0.0.1:{relay.port}/0?ns={ns}")
    a_stream = IdStream(a.memcache_port)
    b_stream = None
    try:
        wait_issuing(a_stream, a)
        a_owner = rds.client.get(f"{ns}:id:{WORKER}")
        relay.blackhole()
        cut_ms = time.time() * 1000
        b = start_instance(servers, rds.url(ns), env=env)
        b_stream = IdStream(b.memcache_port)
        successor = Successor(rds, ns, a_owner, b, b_stream, successor_bound_s(skew_s), cut_ms)
    finally:
        a_ids = a_stream.stop()
        b_ids = b_stream.stop() if b_stream else []
    b_log = b.output()
    figures = compare(f"partition, B behind by {skew_s} s", a_ids, b_ids, cut_ms, successor, b_log)
    # A's requests got no answer: it stopped by itself, at its fence.
    assert a.request("/healthz")[0] == 503, "A is still healthy: the relay did not cut it off"
    assert successor.first_issue_ms is not None, (
        f"B issued nothing within {successor_bound_s(skew_s):.1f} s of the cut: {b_log}")
    assert_never_reissued(*figures)
    assert_waited_visibly(successor)
    assert_no_lease_lost(b_log)


def test_frozen_holder_issues_nothing_after_the_successor_could_take_its_id(
        katsubushi_bin, rds, servers):
    skew_s = 12
    env = behind_env(skew_s)
    check_faketime_reaches_binary(katsubushi_bin, env, skew_s)
    ns = f"frozen-{uuid.uuid4().hex[:8]}"
    key = f"{ns}:id:{WORKER}"
    hold_taken_id(rds, ns)
    a = start_instance(servers, rds.url(ns))
    a_stream = IdStream(a.memcache_port)
    b_stream = None
    try:
        wait_issuing(a_stream, a)
        a_owner = rds.client.get(key)
        # Stopped three quarters of a renewal interval (333 ms) after a
        # renewal: the IDs A issued past the watermark it last recorded are
        # then as many as they get.
        watermark_key = "{%s}:watermark" % key
        recorded = rds.client.get(watermark_key)
        assert wait_for(lambda: rds.client.get(watermark_key) != recorded, 2, interval=0.005)
        time.sleep(0.25)
        a.proc.send_signal(signal.SIGSTOP)
        cut_ms = time.time() * 1000
        # A renewal A sent just before the signal reaches Redis within this.
        time.sleep(0.1)
        # The earliest moment Redis could give id 700 to B, on Redis's clock,
        # which is A's.
        earliest_free_ms = time.time() * 1000 + rds.client.pttl(key)
        b = start_instance(servers, rds.url(ns), env=env)
        b_stream = IdStream(b.memcache_port)
        successor = Successor(rds, ns, a_owner, b, b_stream, successor_bound_s(skew_s), cut_ms)
        a.proc.send_signal(signal.SIGCONT)
        thawed_ms = time.time() * 1000
        # A's client goes on asking: A's pending request and its renewal
        # (every 333 ms) both run at once; 3 s is nine renewals.
        assert wait_for(lambda: "lease lost" in a.output(), 3.0), a.output()
        time.sleep(max(0.0, thawed_ms / 1000 + 3.0 - time.time()))
    finally:
        a_ids = a_stream.stop()
        b_ids = b_stream.stop() if b_stream else []
    b_log = b.output()
    figures = compare(f"frozen, B behind by {skew_s} s", a_ids, b_ids, cut_ms, successor, b_log)
    late = [i for i in a_ids if worker_of(i) == WORKER and ms_of(i) >= earliest_free_ms]
    print(f"  Redis could free {WORKER} at {clock_text(earliest_free_ms)}; A thawed "
          f"{(thawed_ms - cut_ms) / 1000:.1f} s after it stopped; A's IDs stamped after that point: {len(late)}")
    assert not late, "A issued under id 700 after Redis could have given it to B"
    assert successor.first_issue_ms is not None, f"B issued nothing: {b_log}"
    assert_never_reissued(*figures)
    assert_waited_visibly(successor)
    assert_no_lease_lost(b_log)


def start_user(lib_path, redis_url, out_path, env=None):
    """A library user (kb_ctypes.py run as a script) printing every ID to a
    file; it runs until killed."""
    out = open(out_path, "w")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "kb_ctypes.py"), lib_path, redis_url, str(WORKER),
         str(TAKEN), str(EMBEDDED_TTL_MS), "600"],
        stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    return proc


def user_ids(out_path):
    issued, _ = parse(out_path.read_text())
    return [i for _, i in issued]


def test_embedded_partitioned_user_ids_are_never_reissued_by_a_user_behind(katsubushi_lib, rds, relay,
                                                                           tmp_path):
    skew_s = 12
    lib_path = katsubushi_lib
    env = behind_env(skew_s)
    check_faketime_reaches_library(lib_path, env, skew_s)
    ns = f"embedded-{uuid.uuid4().hex[:8]}"
    hold_taken_id(rds, ns)
    a_out, b_out = tmp_path / "a.out", tmp_path / "b.out"
    a = start_user(lib_path, f"redis://127.0.0.1:{relay.port}/0?ns={ns}", a_out)
    b = None
    try:
        # Issuing under 700 for a second: past its first synchronous renewals.
        assert wait_for(lambda: any(worker_of(i) == WORKER for i in user_ids(a_out)), 20), a_out.read_text()
        time.sleep(1.0)
        relay.blackhole()
        cut_ms = time.time() * 1000
        b = start_user(lib_path, rds.url(ns), b_out, env=env)
        # A's key expires <= 2 s after the cut (A confirmed it before); a
        # library user does no discovery and tries SET NX at every call, so B
        # takes the id at once; then it waits out the skew plus A's promise
        # (0.67 s past A's last confirmation); 3 s of slack for a loaded
        # 2-core machine.
        bound_s = EMBEDDED_TTL_MS / 1000 + skew_s + 1 + 3
        first_seen = None
        deadline = time.time() + bound_s
        while time.time() < deadline:
            if first_seen is None and user_ids(b_out):
                first_seen = time.time()
                deadline = first_seen + B_ISSUE_S
            time.sleep(0.1)
    finally:
        a.kill()
        a.wait()
        if b is not None:
            b.kill()
            b.wait()
    a_ids, b_ids = user_ids(a_out), user_ids(b_out)
    figures = compare(f"embedded, partitioned user and a user behind by {skew_s} s", a_ids, b_ids, cut_ms)
    if first_seen is not None:
        print(f"  B's first ID seen {first_seen - cut_ms / 1000:.1f} s after the cut")
    assert first_seen is not None, f"B issued nothing within {bound_s} s of the cut"
    assert_never_reissued(*figures)
