"""Worker ids leased through a real redis-server, side by side with a raus
(go-katsubushi) participant written here step by step: distinct ids, release
on stop, discovery by broadcast, self-fencing when Redis or the server pauses,
stolen leases, Redis restarts, and restart watermarks.

Every test starts its own redis-server on a free loopback port and stops it.
"""

import http.client
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest
import redis
import redis.cluster

from conftest import free_port, ms_of, worker_of
from redis_topology import NS, RedisServer, cluster_port, wait_until as wait_for

SHORT_EXPIRY = "3s"  # -lease-expiry for the fault tests: deadline 1.968 s after a renewal


@pytest.fixture
def rds():
    r = RedisServer()
    yield r
    if r.proc.poll() is None:
        r.proc.send_signal(signal.SIGCONT)
    r.stop(signal.SIGKILL)


class HttpClient:
    """One keep-alive HTTP connection; one per thread."""

    def __init__(self, port):
        self.http_port = port
        self.conn = None

    def request(self, path, timeout=2):
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            return r.status, r.read().decode()
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None, ""

    def next_id(self):
        status, body = self.request("/id")
        return int(body) if status == 200 else None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class LeasedServer(HttpClient):
    """katsubushi with -redis and an HTTP port; output captured to a file."""

    def __init__(self, binary, redis_url, tmp_path, min_id=1, max_id=1023, extra=(), env=None):
        self.http_port = free_port()
        self.log_path = tmp_path / f"katsubushi-{self.http_port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, f"-redis={redis_url}", f"-min-worker-id={min_id}", f"-max-worker-id={max_id}",
             "-port=0", f"-http-port={self.http_port}", "-threads=1", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.conn = None

    def healthy(self):
        return self.request("/healthz")[0] == 200

    def wait_healthy(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}: {self.output()}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise AssertionError(f"not healthy within {timeout}s: {self.output()}")

    def worker_id(self):
        id_ = self.next_id()
        assert id_ is not None, self.output()
        return worker_of(id_)

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        self.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def servers(katsubushi_bin, tmp_path):
    started = []

    def start(redis_url, **kwargs):
        s = LeasedServer(katsubushi_bin, redis_url, tmp_path, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class RausParticipant:
    """What a go-katsubushi (raus v0.1.0) instance does, step by step: SET NX
    EX 60 with its uuid, then every second PUBLISH "<uuid>:<id>" and MULTI
    GETSET/EXPIRE/EXEC."""

    def __init__(self, client, ids, ns=NS):
        self.client, self.ids, self.ns = client, ids, ns
        self.uuid = str(uuid.uuid4())
        self.stop_event = threading.Event()
        for i in ids:
            assert client.set(f"{ns}:id:{i}", self.uuid, ex=60, nx=True), f"id {i} is taken"
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()

    def _hold(self):
        while not self.stop_event.wait(1.0):
            for i in self.ids:
                try:
                    self.client.publish(f"{self.ns}:broadcast", f"{self.uuid}:{i}")
                    pipe = self.client.pipeline(transaction=True)
                    pipe.getset(f"{self.ns}:id:{i}", self.uuid)
                    pipe.expire(f"{self.ns}:id:{i}", 60)
                    pipe.execute()
                except redis.RedisError:
                    pass

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        for i in self.ids:
            self.client.delete(f"{self.ns}:id:{i}")


class IdCollector:
    """Asks a server for IDs as fast as one HTTP connection allows, keeping
    (wall ms when asked, id or None)."""

    def __init__(self, server):
        self.client = HttpClient(server.http_port)
        self.results = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            self.results.append((time.time() * 1000, self.client.next_id()))
            time.sleep(0.002)

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        self.client.close()
        return self.results


def assert_all_distinct(ids):
    assert len(ids) == len(set(ids)), "an ID was issued twice"


def test_three_instances_get_distinct_ids_a_fourth_waits_and_release_is_immediate(rds, servers):
    trio = [servers(rds.url(), min_id=1, max_id=3) for _ in range(3)]
    for s in trio:
        s.wait_healthy()
    ids = {s.worker_id(): s for s in trio}
    assert sorted(ids) == [1, 2, 3]
    for worker, s in ids.items():
        owner = rds.client.get(f"{NS}:id:{worker}")
        assert re.fullmatch(r"[0-9a-f-]{36}", owner)
        assert 0 < rds.client.ttl(f"{NS}:id:{worker}") <= 600

    fourth = servers(rds.url(), min_id=1, max_id=3)
    assert wait_for(lambda: "no free worker id between 1 and 3" in fourth.output(), 10), fourth.output()
    assert fourth.request("/healthz")[0] == 503
    status, body = fourth.request("/id")
    assert status == 503 and "no worker id" in body

    leaving = ids[2]
    assert leaving.stop() == 0
    # Released by compare-and-delete on the way out: free at once, not at expiry.
    assert rds.client.exists(f"{NS}:id:2") == 0
    assert int(rds.client.get("{%s:id:2}:watermark" % NS)) > 0
    fourth.wait_healthy(timeout=20)
    assert fourth.worker_id() == 2


def test_a_one_id_range_is_refused_like_go(katsubushi_bin, rds):
    r = subprocess.run([katsubushi_bin, f"-redis={rds.url()}", "-min-worker-id=5",
                        "-max-worker-id=5"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "max should be greater than min" in r.stdout + r.stderr


def test_raus_participant_ids_are_never_taken_and_both_see_each_other(rds, servers):
    go = RausParticipant(rds.client, [1, 2])
    try:
        listener = rds.client.pubsub()
        listener.subscribe(f"{NS}:broadcast")
        s = servers(rds.url(), min_id=1, max_id=3)
        s.wait_healthy()
        assert s.worker_id() == 3
        out = s.output()
        assert f"discovered worker id 1 in use by {go.uuid}" in out
        assert f"discovered worker id 2 in use by {go.uuid}" in out
        # And the Go side sees us: our broadcast is "<our uuid>:3".
        ours = rds.client.get(f"{NS}:id:3")
        seen = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and f"{ours}:3" not in seen:
            m = listener.get_message(timeout=0.5)
            if m and m["type"] == "message":
                seen.add(m["data"])
        assert f"{ours}:3" in seen
        listener.close()
        # The Go participant's keys were never touched.
        assert rds.client.get(f"{NS}:id:1") == go.uuid
        assert rds.client.get(f"{NS}:id:2") == go.uuid
    finally:
        go.stop()


def test_key_expiring_while_redis_is_paused_stops_issuing_before_redis_could_free_it(rds, servers):
    s = servers(rds.url(), min_id=1, max_id=5, extra=[f"-lease-expiry={SHORT_EXPIRY}"])
    s.wait_healthy()
    worker = s.worker_id()
    key = f"{NS}:id:{worker}"
    old_owner = rds.client.get(key)
    collector = IdCollector(s)
    time.sleep(0.5)
    # The earliest moment Redis could free the key, as Redis itself sees it.
    pttl = rds.client.pttl(key)
    earliest_free_ms = time.time() * 1000 + pttl - 5
    rds.proc.send_signal(signal.SIGSTOP)
    paused_at = time.time() * 1000
    time.sleep(4.0)
    during = collector.stop()
    issued = [i for _, i in during if i is not None]
    assert issued, s.output()
    assert max(ms_of(i) for i in issued) < earliest_free_ms, "issued after Redis could free the key"
    refused_from = min(t for t, i in during if i is None and t > paused_at)
    assert refused_from - paused_at < 2500, "kept issuing too long without Redis"
    print(f"\nRedis paused: refused {refused_from - paused_at:.0f} ms later; last ID "
          f"{earliest_free_ms - max(ms_of(i) for i in issued):.0f} ms before Redis could free the key")
    assert s.request("/healthz")[0] == 503

    rds.proc.send_signal(signal.SIGCONT)
    s.wait_healthy(timeout=20)
    # The old key expired; it was never re-created with the old owner's uuid.
    assert rds.client.get(key) != old_owner
    assert "lease lost" in s.output()
    after = [s.next_id() for _ in range(100)]
    assert_all_distinct(issued + after)


def test_stolen_lease_stops_issuing_within_two_seconds_then_recovers(rds, servers):
    s = servers(rds.url(), min_id=1, max_id=4)
    s.wait_healthy()
    worker = s.worker_id()
    collector = IdCollector(s)
    time.sleep(0.3)
    stolen_at = time.time() * 1000
    rds.client.set(f"{NS}:id:{worker}", "thief-" + str(uuid.uuid4()), ex=600)
    assert wait_for(lambda: s.request("/healthz")[0] == 503, 2.0), "still healthy 2 s after the steal"
    detected_ms = time.time() * 1000 - stolen_at
    s.wait_healthy(timeout=20)
    print(f"\nstolen lease: /healthz 503 within {detected_ms:.0f} ms, serving again "
          f"{time.time() * 1000 - stolen_at:.0f} ms after the steal")
    results = collector.stop()
    old = [(t, i) for t, i in results if i is not None and worker_of(i) == worker]
    assert old and max(ms_of(i) for _, i in old) < stolen_at + 2000
    # Once refused, never an ID under the stolen lease again.
    first_refusal = min(t for t, i in results if i is None and t > stolen_at)
    assert all(t < first_refusal for t, _ in old)
    new_worker = s.worker_id()
    assert new_worker != worker
    assert rds.client.get(f"{NS}:id:{worker}").startswith("thief-")
    assert "lease lost" in s.output()
    assert_all_distinct([i for _, i in results if i is not None])


def test_server_paused_past_its_lease_issues_nothing_under_it_after_resuming(rds, servers):
    go = RausParticipant(rds.client, [6])
    try:
        s = servers(rds.url(), min_id=5, max_id=6, extra=[f"-lease-expiry={SHORT_EXPIRY}"])
        s.wait_healthy()
        assert s.worker_id() == 5
        s.proc.send_signal(signal.SIGSTOP)
        # Another instance takes id 5 as soon as Redis frees it.
        other = str(uuid.uuid4())
        assert wait_for(lambda: rds.client.set(f"{NS}:id:5", other, ex=60, nx=True), 6.0)
        s.proc.send_signal(signal.SIGCONT)
        answers = [s.next_id() for _ in range(300)]
        assert all(a is None for a in answers), "issued under a lease another instance holds"
        assert s.request("/healthz")[0] == 503
        assert rds.client.get(f"{NS}:id:5") == other
        assert wait_for(lambda: "lease lost" in s.output(), 5)
    finally:
        go.stop()


def test_redis_killed_and_restarted(rds, servers):
    s = servers(rds.url(), min_id=1, max_id=3, extra=[f"-lease-expiry={SHORT_EXPIRY}"])
    s.wait_healthy()
    before = [s.next_id() for _ in range(50)]
    rds.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    # Keeps serving while the lease is within its deadline...
    assert s.next_id() is not None
    # ...then stops, and says why.
    assert wait_for(lambda: s.request("/healthz")[0] == 503, 3.0)
    assert time.monotonic() - killed_at < 3.0
    status, body = s.request("/id")
    assert status == 503 and "lease" in body
    time.sleep(1.0)
    assert s.proc.poll() is None, "must never exit because Redis is gone"

    restarted = RedisServer(port=rds.port)  # empty: the old key is gone
    rds.proc = restarted.proc
    s.wait_healthy(timeout=30)
    worker = s.worker_id()
    assert re.fullmatch(r"[0-9a-f-]{36}", rds.client.get(f"{NS}:id:{worker}"))
    after = [s.next_id() for _ in range(50)]
    assert_all_distinct(before + after)
    assert min(after) > max(before)


def test_acquisition_waits_out_the_watermark_of_the_previous_holder(rds, servers):
    go = RausParticipant(rds.client, [1])
    try:
        ahead_ms = int(time.time() * 1000) + 1500  # a previous holder's clock was ahead
        rds.client.set("{%s:id:2}:watermark" % NS, ahead_ms)
        s = servers(rds.url(), min_id=1, max_id=2)
        s.wait_healthy()
        first = s.next_id()
        assert worker_of(first) == 2
        assert ms_of(first) > ahead_ms
        last = max(s.next_id() for _ in range(20))
        assert s.stop() == 0
        assert int(rds.client.get("{%s:id:2}:watermark" % NS)) >= ms_of(last)
    finally:
        go.stop()


def test_redis_down_at_start_is_retried_not_fatal(katsubushi_bin, servers):
    dead_port = free_port()
    s = servers(f"redis://127.0.0.1:{dead_port}/0?ns={NS}", min_id=1, max_id=3)
    assert wait_for(lambda: "cannot reach Redis" in s.output(), 10), s.output()
    # The lease keeper starts before the listeners, so the log line can come
    # before /healthz answers at all; it must then answer 503, never 200.
    assert wait_for(lambda: s.request("/healthz")[0] is not None, 10), s.output()
    assert s.request("/healthz")[0] == 503
    assert s.proc.poll() is None
    late = RedisServer(port=dead_port)
    try:
        s.wait_healthy(timeout=30)
        assert 1 <= s.worker_id() <= 3
    finally:
        s.stop()
        late.stop(signal.SIGKILL)


def test_state_file_restart_waits_for_the_recorded_time(katsubushi_bin, tmp_path):
    state = tmp_path / "state"

    def start():
        port = free_port()
        proc = subprocess.Popen([katsubushi_bin, "-worker-id=9", "-port=0", f"-http-port={port}",
                                 f"-state-file={state}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = LeasedServer.__new__(LeasedServer)
        server.http_port, server.proc, server.conn = port, proc, None
        server.log = open(os.devnull, "wb")
        server.log_path = tmp_path / "unused"
        return server

    s = start()
    s.wait_healthy()
    ids = [s.next_id() for _ in range(20)]
    s.stop(signal.SIGKILL)  # a crash: the file holds a promise past every ID
    recorded = int(state.read_text().split()[3])
    assert recorded > ms_of(max(ids))

    # As if the previous life ran on a clock 1.5 s ahead of this one.
    ahead_ms = int(time.time() * 1000) + 1500
    state.write_text(f"katsubushi-state 1 9 {ahead_ms}\n")
    s = start()
    s.wait_healthy()
    first = s.next_id()
    assert ms_of(first) > ahead_ms
    more = [s.next_id() for _ in range(20)]
    assert s.stop() == 0
    # A clean stop records the exact last ID time, so a restart need not wait.
    assert int(state.read_text().split()[3]) == ms_of(max(more))
    assert_all_distinct(ids + [first] + more)

    state.write_text("not a state file\n")
    r = subprocess.run([katsubushi_bin, "-worker-id=9", "-port=0", f"-http-port={free_port()}",
                        f"-state-file={state}"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "state file" in r.stdout + r.stderr


def test_docker_compose_commands_run_as_written(katsubushi_bin, rds, tmp_path):
    """No Docker engine here: run each compose service's command with the
    binary, only pointing it at the local Redis and free ports, and check the
    pair leases distinct ids and answers the health check it declares."""
    import yaml  # python3-yaml, a dependency of the test suite

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = {n: s for n, s in compose["services"].items() if n.startswith("katsubushi")}
    assert len(services) == 2
    running = []
    try:
        for name, svc in services.items():
            health = svc["healthcheck"]["test"]
            assert health[:3] == ["CMD", "/usr/local/bin/katsubushi", "-health-check"]
            health_port = int(re.search(r"-http-port=(\d+)", " ".join(health)).group(1))
            args = []
            for arg in svc["command"]:
                if arg.startswith("-redis="):
                    assert arg == "-redis=redis://redis:6379/0?ns=katsubushi"
                    arg = f"-redis={rds.url('katsubushi')}"
                elif arg.startswith("-http-port="):
                    assert int(arg.split("=")[1]) == health_port, "health check on another port"
                    arg = None
                elif arg.startswith("-grpc-port="):
                    arg = f"-grpc-port={free_port()}"
                if arg:
                    args.append(arg)
            s = LeasedServer(katsubushi_bin, rds.url("katsubushi"), tmp_path, extra=args)
            running.append(s)
        for s in running:
            s.wait_healthy()
            # The compose health check itself, pointed at this server's port.
            r = subprocess.run([katsubushi_bin, "-health-check", f"-http-port={s.http_port}"],
                               capture_output=True, text=True, timeout=10)
            assert r.returncode == 0 and r.stdout.startswith("healthy: HTTP"), r.stdout
        assert len({s.worker_id() for s in running}) == 2
        assert "Listening gRPC server" in running[0].output()
    finally:
        for s in running:
            s.stop()


def _pings(port):
    try:
        return redis.Redis(port=port).ping()
    except redis.ConnectionError:
        return False


def test_redis_cluster_leases_follow_moved_redirects(katsubushi_bin, servers, tmp_path):
    """rediscluster://: three real cluster nodes; lock keys of different ids
    live on different nodes, so acquisition, renewal and release must follow
    MOVED redirects from the seed node."""
    ports = [cluster_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    nodes = [subprocess.Popen(
        ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", str(tmp_path / f"nodes-{p}.conf"), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for p in ports]
    try:
        for p in ports:
            assert wait_for(lambda p=p: _pings(p), 10)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        def cluster_ok(port):
            info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True,
                                  text=True, timeout=5, env=env).stdout
            return "cluster_state:ok" in info
        assert wait_for(lambda: all(cluster_ok(p) for p in ports), 20, interval=0.2)
        cluster = redis.cluster.RedisCluster(host="127.0.0.1", port=ports[0], decode_responses=True)
        url = f"rediscluster://127.0.0.1:{ports[0]}?ns={NS}"
        # Two consecutive ids whose keys live on other nodes than the seed,
        # so that every lease command has to follow a MOVED redirect.
        def off_seed(i):
            return cluster.get_node_from_key(f"{NS}:id:{i}").port != ports[0]
        low = next(i for i in range(1, 1000) if off_seed(i) and off_seed(i + 1))
        a = servers(url, min_id=low, max_id=low + 1)
        b = servers(url, min_id=low, max_id=low + 1)
        a.wait_healthy()
        b.wait_healthy()
        wa, wb = a.worker_id(), b.worker_id()
        assert {wa, wb} == {low, low + 1}
        slots = {cluster.keyslot(f"{NS}:id:{w}") for w in (wa, wb)}
        owners = {cluster.get_node_from_key(f"{NS}:id:{w}").port for w in (wa, wb)}
        print(f"\ncluster: ids {wa}, {wb} in slots {sorted(slots)} on nodes {sorted(owners)}")
        # Renewals reach the owning node: the keys stay alive past a renewal.
        key = f"{NS}:id:{wa}"
        cluster.pexpire(key, 3000)
        assert wait_for(lambda: cluster.pttl(key) > 500_000, 3)
        assert a.stop() == 0
        assert cluster.exists(key) == 0  # released on its node
        assert cluster.exists(f"{NS}:id:{wb}") == 1
    finally:
        for n in nodes:
            n.kill()
            n.wait()
