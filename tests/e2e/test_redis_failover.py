"""Issue 19: the worker-id lease through Redis as it fails over in production,
for the server and for the C ABI, with real redis-server processes.

- Failover by demotion behind a primary endpoint name (ElastiCache, or a
  Sentinel-managed pair reached through a name): B REPLICAOF NO ONE, A
  REPLICAOF B (A keeps its clients and answers writes with READONLY), the name
  moves to B. Both instances issue again within 3 s and to the end.
- Sentinel: the primary killed under load; the instances follow the promotion.
- Redis Cluster: the master holding the lease key, named in the URL, killed.
- The lost write: replication stalled while a holder acquires; the primary
  dies and the replica that never got the key is promoted; a second holder
  acquires the same id there. Nothing is issued twice while lease writes wait
  for the replicas (WAIT); without that wait the duplicates are reported.

Every test prints its figures (run with -s, or read the ctest log).
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import kb_ctypes
from redis_topology import Cluster, RedisServer, Sentinels, same_keys, wait_until
from tcp_relay import TcpRelay
from test_c_abi_lease import parse
from test_redis_lease import IdCollector, servers  # noqa: F401  (servers is a fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
LEASE_EXPIRY = "-lease-expiry=6s"
LEASE_TTL_MS = 6000  # the C ABI's lease, the same length
# The failover by demotion: both instances issue again within this long, and
# the run lasts at least three lease lengths.
FAILOVER_BOUND_S = 3.0
AFTER_FAILOVER_S = 20.0
# Redis Cluster: a replica takes over from a killed master within about two
# node timeouts; the instances issue again within this long of the kill.
CLUSTER_BOUND_S = 8.0
AFTER_CLUSTER_KILL_S = 18.0
# Sentinel: the promotion comes ~1 s (down-after) plus an election after the
# kill; the instances issue again within this long of the promotion.
SENTINEL_FOLLOW_S = 4.0
AFTER_SENTINEL_KILL_S = 15.0


@pytest.fixture
def owned():
    """Registers what a test starts (anything with stop() or close()) and
    stops it at the end, last started first."""
    started = []

    def own(thing):
        started.append(thing)
        return thing

    yield own
    for thing in reversed(started):
        (getattr(thing, "stop", None) or thing.close)()


class LibraryUser:
    """A program using libkatsubushi.so (kb_ctypes.py as a script) in its own
    process: one kb_next_id every ~2 ms, each result with its wall time, to a
    file (the run is long for a pipe)."""

    def __init__(self, lib_path, url, min_id, max_id, tmp_path, duration=120, fields=None):
        name = f"user-{min_id}-{uuid.uuid4().hex[:6]}"
        self.out_path, self.err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        self.out, self.err = open(self.out_path, "w"), open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "kb_ctypes.py"), lib_path, url, str(min_id), str(max_id),
             str(LEASE_TTL_MS), str(duration), json.dumps(fields or {})],
            stdout=self.out, stderr=self.err)
        self.ended_ms = None

    def events(self):
        """(wall ms, id or None) for every call so far."""
        if not self.out.closed:
            self.out.flush()
        issued, errors = parse(self.out_path.read_text())
        return sorted([(t, i) for t, i in issued] + [(t, None) for t, _ in errors], key=lambda e: e[0])

    def ids(self):
        return [i for _, i in self.events() if i is not None]

    def issuing(self):
        return any(i is not None for _, i in self.events())

    def errors_text(self):
        return self.err_path.read_text(errors="replace")

    def end(self):
        """Stops it (by PID) and returns whether it was still running."""
        running = self.proc.poll() is None
        self.ended_ms = time.time() * 1000
        self.stop()
        return running

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()


def longest_without_id(events, from_ms, end_ms):
    """In seconds, from from_ms to end_ms: the stretch before the first ID
    and the one after the last count."""
    marks = [from_ms] + [t for t, i in events if i is not None and t >= from_ms] + [end_ms]
    return max(b - a for a, b in zip(marks, marks[1:])) / 1000


def after_fault(label, events, fault_ms, end_ms, window_s=20.0):
    """Prints what an instance served from the fault on and returns the
    longest stretch without an ID from the fault to the end of the run."""
    window = [(t, i) for t, i in events if fault_ms <= t < fault_ms + window_s * 1000]
    served = sum(1 for _, i in window if i is not None)
    ok = [t for t, i in events if i is not None and t >= fault_ms]
    longest = longest_without_id(events, fault_ms, end_ms)
    failures = [t for t, i in events if i is None and t >= fault_ms]
    recovered = next((t for t in ok if failures and t > failures[0]), None)
    text = (f"{label}: in the {window_s:g} s after the fault {served} IDs served, {len(window) - served} failed; "
            f"first ID {(ok[0] - fault_ms) / 1000:.2f} s after it" if ok else
            f"{label}: in the {window_s:g} s after the fault {served} IDs served, {len(window) - served} failed; "
            f"no ID after it")
    if failures:
        text += (f"; first failure {(failures[0] - fault_ms) / 1000:.2f} s after it, "
                 + (f"first ID after that {(recovered - failures[0]) / 1000:.2f} s later" if recovered
                    else "no ID after that"))
    if ok:
        text += f"; last ID {(end_ms - ok[-1]) / 1000:.2f} s before the end"
    text += f"; longest stretch without an ID {longest:.2f} s"
    print(text)
    return longest


def metric(server, name):
    status, body = server.request("/metrics")
    assert status == 200
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def assert_distinct(*id_lists):
    everything = [i for ids in id_lists for i in ids]
    duplicates = len(everything) - len(set(everything))
    assert duplicates == 0, f"{duplicates} IDs issued twice"


def run_until(deadline_s, collector, user):
    """Runs both instances until deadline_s (time.time()), then stops them;
    returns (end ms, the server's events, whether the library user was still
    running, its events)."""
    time.sleep(max(0.0, deadline_s - time.time()))
    end_ms = time.time() * 1000
    server_events = collector.stop()
    user_running = user.end()
    return end_ms, server_events, user_running, user.events()


def start_instances(servers, owned, lib_path, url, tmp_path, server_ids, user_ids):
    """The server (HTTP /id asked in a loop) and a library user, both issuing
    for a second; returns (server, user, the server's IdCollector)."""
    server = servers(url, min_id=server_ids[0], max_id=server_ids[1], extra=[LEASE_EXPIRY])
    user = owned(LibraryUser(lib_path, url, user_ids[0], user_ids[1], tmp_path))
    server.wait_healthy(timeout=20)
    assert wait_until(user.issuing, 20), f"the library user issued nothing: {user.errors_text()}"
    collector = IdCollector(server)
    time.sleep(1.0)
    return server, user, collector


def test_failover_by_demotion_behind_the_endpoint_name_is_followed_without_restart(
        katsubushi_lib, servers, owned, tmp_path):
    a = owned(RedisServer(directory=tmp_path))
    b = owned(RedisServer(directory=tmp_path, args=["--replicaof", "127.0.0.1", str(a.port)]))
    endpoint = owned(TcpRelay(a.port))
    url = f"redis://127.0.0.1:{endpoint.port}/0?ns=fo"
    server, user, collector = start_instances(servers, owned, katsubushi_lib, url, tmp_path, (1, 2), (3, 4))
    assert wait_until(lambda: len(b.client.keys("fo:id:*")) == 2 and same_keys(a, b, "fo:*"), 5)

    failover_ms = time.time() * 1000
    b.replicate(None)
    a.replicate(b.port)
    endpoint.retarget(b.port)
    end_ms, server_events, user_running, user_events = run_until(
        failover_ms / 1000 + AFTER_FAILOVER_S, collector, user)

    print(f"\nfailover by demotion at +0 s, run {AFTER_FAILOVER_S:g} s after it (lease 6 s)")
    server_gap = after_fault("server", server_events, failover_ms, end_ms)
    user_gap = after_fault("C ABI", user_events, failover_ms, user.ended_ms)
    assert server.proc.poll() is None and user_running, "an instance exited"
    assert_distinct([i for _, i in server_events if i is not None], user.ids())
    assert server_gap <= FAILOVER_BOUND_S, f"the server went {server_gap:.1f} s without an ID:\n{server.output()}"
    assert user_gap <= FAILOVER_BOUND_S, f"the library went {user_gap:.1f} s without an ID:\n{user.errors_text()}"
    # It did reconnect (to B, through the moved name), and counts it.
    reconnects = metric(server, "katsubushi_redis_reconnects_total")
    assert reconnects is not None and reconnects >= 1, "katsubushi_redis_reconnects_total"
    assert len(b.client.keys("fo:id:*")) == 2, "the leases live on the new primary"


def test_sentinel_primary_killed_under_load_is_followed(katsubushi_lib, servers, owned, tmp_path):
    primary = owned(RedisServer(directory=tmp_path))
    replica = owned(RedisServer(directory=tmp_path, args=["--replicaof", "127.0.0.1", str(primary.port)]))
    sentinels = owned(Sentinels(str(tmp_path), primary.port))
    assert wait_until(sentinels.ready, 20, interval=0.2), "the sentinels did not find each other and the replica"
    url = sentinels.url("sn")
    server, user, collector = start_instances(servers, owned, katsubushi_lib, url, tmp_path, (1, 2), (3, 4))
    assert wait_until(lambda: len(replica.client.keys("sn:id:*")) == 2 and same_keys(primary, replica, "sn:*"), 5)

    killed_ms = time.time() * 1000
    primary.stop(signal.SIGKILL)
    assert wait_until(lambda: sentinels.primary_port() == replica.port, 15, interval=0.1), "no promotion"
    promoted_ms = time.time() * 1000
    end_ms, server_events, user_running, user_events = run_until(
        killed_ms / 1000 + AFTER_SENTINEL_KILL_S, collector, user)

    print(f"\nSentinel: primary killed at +0 s, replica promoted {(promoted_ms - killed_ms) / 1000:.1f} s later")
    after_fault("server", server_events, killed_ms, end_ms, AFTER_SENTINEL_KILL_S)
    after_fault("C ABI", user_events, killed_ms, user.ended_ms, AFTER_SENTINEL_KILL_S)
    assert server.proc.poll() is None and user_running, "an instance exited"
    assert_distinct([i for _, i in server_events if i is not None], user.ids())
    # From the promotion on, both follow it: an ID within SENTINEL_FOLLOW_S,
    # and none of them goes that long without one to the end.
    for label, events, end in (("server", server_events, end_ms), ("C ABI", user_events, user.ended_ms)):
        longest = longest_without_id(events, promoted_ms, end)
        assert longest <= SENTINEL_FOLLOW_S, f"{label} went {longest:.1f} s without an ID after the promotion"
    assert len(replica.client.keys("sn:id:*")) == 2


def test_cluster_master_named_in_the_url_killed(katsubushi_lib, servers, owned, tmp_path):
    cluster = owned(Cluster(str(tmp_path)))
    # Two consecutive ids whose lease keys live on one master: that master is
    # the only node the URL names.
    key = "cl:id:{}".format
    low = next(i for i in range(1, 1000) if cluster.master_of(key(i)) == cluster.master_of(key(i + 1)))
    master = cluster.master_of(key(low))
    url = f"rediscluster://127.0.0.1:{master}?ns=cl"
    server, user, collector = start_instances(servers, owned, katsubushi_lib, url, tmp_path,
                                              (low, low + 1), (low, low + 1))
    replica = cluster.replica_of(master)
    holders = {cluster.nodes[master].client.get(key(i)) for i in (low, low + 1)}
    assert None not in holders and len(holders) == 2
    assert wait_until(lambda: {cluster.replica_get(replica, key(i)) for i in (low, low + 1)} == holders, 5)

    killed_ms = time.time() * 1000
    cluster.nodes[master].stop(signal.SIGKILL)
    assert wait_until(lambda: cluster.master_of(key(low)) == replica, 15, interval=0.1), "no takeover"
    promoted_ms = time.time() * 1000
    end_ms, server_events, user_running, user_events = run_until(
        killed_ms / 1000 + AFTER_CLUSTER_KILL_S, collector, user)

    print(f"\ncluster: master {master} (ids {low}, {low + 1}) killed at +0 s, replica {replica} took over "
          f"{(promoted_ms - killed_ms) / 1000:.1f} s later")
    server_gap = after_fault("server", server_events, killed_ms, end_ms, AFTER_CLUSTER_KILL_S)
    user_gap = after_fault("C ABI", user_events, killed_ms, user.ended_ms, AFTER_CLUSTER_KILL_S)
    assert server.proc.poll() is None and user_running, "an instance exited"
    assert_distinct([i for _, i in server_events if i is not None], user.ids())
    assert server_gap <= CLUSTER_BOUND_S, f"the server went {server_gap:.1f} s without an ID:\n{server.output()}"
    assert user_gap <= CLUSTER_BOUND_S, f"the library went {user_gap:.1f} s without an ID:\n{user.errors_text()}"


# The lost write: ids 500..501, 501 held by a stranger for the whole run.
LOST_WORKER, LOST_TAKEN = 500, 501
H1_ALONE_S = 2.0     # H1 acquires and issues while replication is stalled
BOTH_S = 4.0         # then H1 and H2 both run after the promotion


def run_lost_write(lib_path, owned, tmp_path, fields):
    """Returns (H1's IDs, H2's IDs, H1's IDs before the kill)."""
    primary = owned(RedisServer(directory=tmp_path))
    link = owned(TcpRelay(primary.port))  # the replica's link to the primary
    replica = owned(RedisServer(directory=tmp_path, args=["--replicaof", "127.0.0.1", str(link.port)]))
    endpoint = owned(TcpRelay(primary.port))
    url = f"redis://127.0.0.1:{endpoint.port}/0?ns=lw"
    assert wait_until(replica.in_sync, 10)
    primary.client.set(f"lw:id:{LOST_TAKEN}", str(uuid.uuid4()), ex=600)
    assert wait_until(lambda: replica.client.exists(f"lw:id:{LOST_TAKEN}") == 1, 5)

    link.blackhole()
    h1 = owned(LibraryUser(lib_path, url, LOST_WORKER, LOST_TAKEN, tmp_path, fields=fields))
    time.sleep(H1_ALONE_S)
    # Kill just after a renewal of H1's (if it holds the key): the most time
    # before its next one, as the issue measured it.
    key = f"lw:id:{LOST_WORKER}"
    wait_until(lambda: primary.client.pttl(key) > LEASE_TTL_MS - 300, LEASE_TTL_MS / 3000 + 0.5, interval=0.01)
    killed_ms = time.time() * 1000
    primary.stop(signal.SIGKILL)
    replica.replicate(None)
    endpoint.retarget(replica.port)
    h2 = owned(LibraryUser(lib_path, url, LOST_WORKER, LOST_TAKEN, tmp_path, fields=fields))
    time.sleep(BOTH_S)
    h1.end()
    h2.end()
    h1_ids, h2_ids = h1.ids(), h2.ids()
    h1_before = [i for t, i in h1.events() if i is not None and t < killed_ms]
    return h1_ids, h2_ids, h1_before


def lost_write_figures(label, h1_ids, h2_ids, h1_before):
    everything = h1_ids + h2_ids
    duplicates = len(everything) - len(set(everything))
    print(f"\nlost write, {label}: H1 {len(h1_ids)} IDs ({len(h1_before)} before the primary died), "
          f"H2 {len(h2_ids)} IDs, duplicates {duplicates}")
    return duplicates


def test_lost_write_with_replica_acknowledgement_never_duplicates(katsubushi_lib, owned, tmp_path):
    h1_ids, h2_ids, h1_before = run_lost_write(katsubushi_lib, owned, tmp_path, fields={})
    duplicates = lost_write_figures("replica acknowledgement on (the default)", h1_ids, h2_ids, h1_before)
    assert duplicates == 0, f"{duplicates} IDs issued twice"
    # Someone holds 500 on the promoted replica and issues under it.
    assert h1_ids or h2_ids, "nothing issued after the promotion"
    assert not h1_before, "H1 issued on an acquisition the stalled replica never acknowledged"


def test_lost_write_without_replica_acknowledgement_is_reported(katsubushi_lib, owned, tmp_path):
    fields = {}
    if "redis_replica_timeout_ms" in {name for name, _ in kb_ctypes.KbConfig._fields_}:
        fields["redis_replica_timeout_ms"] = -1
    h1_ids, h2_ids, h1_before = run_lost_write(katsubushi_lib, owned, tmp_path, fields=fields)
    lost_write_figures("replica acknowledgement off" + ("" if fields else " (a binding without it)"),
                       h1_ids, h2_ids, h1_before)
    assert h1_before, "H1 issued nothing while its lease write went unacknowledged"
