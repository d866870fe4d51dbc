"""Redis as it runs in production, on 127.0.0.1, for the e2e tests (issue 19):
a redis-server (plain or TLS-only, optionally a replica), TLS certificates
made with the openssl CLI, three Sentinels, a 3 + 3 Redis Cluster, and the
relays that stand for ElastiCache's primary endpoint name (TcpRelay.retarget)
and for a replication link that can be stalled (TcpRelay.blackhole).

Every process is started on free ports in a temporary directory, stopped by
its PID, and every wait is bounded.
"""

import os
import random
import signal
import socket
import subprocess
import time

import redis

from conftest import free_port

# Sentinel: a primary is subjectively down after this long without a reply,
# and a failover gives up (for a retry) after failover-timeout.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 3000
MASTER_NAME = "mymaster"
# The lease namespace of the tests that do not choose one.
NS = "kbtest"
# Redis Cluster: a master is failed after this long without a reply; its
# replica is elected within about twice that.
CLUSTER_NODE_TIMEOUT_MS = 1000


def redis_env():
    """The environment of redis-server, redis-cli and openssl: never a
    sanitizer runtime preloaded for the library under test."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class Certs:
    """A CA, a server certificate for 127.0.0.1 and localhost, a client
    certificate, all signed by the CA; and a second, unrelated CA."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca, self.ca_key = self._ca("ca", "katsubushi test CA")
        self.other_ca, _ = self._ca("other-ca", "an unrelated CA")
        self.server_cert, self.server_key = self._leaf(
            "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        self.client_cert, self.client_key = self._leaf(
            "client", "katsubushi client", "extendedKeyUsage=clientAuth\n")

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=redis_env())

    def _ca(self, name, subject):
        cert, key = self._path(f"{name}.crt"), self._path(f"{name}.key")
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                      "-days", "2", "-subj", f"/CN={subject}")
        return cert, key

    def _leaf(self, name, cn, extensions):
        cert, key, csr = self._path(f"{name}.crt"), self._path(f"{name}.key"), self._path(f"{name}.csr")
        ext = self._path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write(extensions)
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                      "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


class RedisServer:
    """One redis-server on a free loopback port. With certs it listens on TLS
    only (--port 0 --tls-port); auth_clients asks clients for a certificate."""

    def __init__(self, port=None, directory=None, args=(), certs=None, auth_clients=False):
        self.port = port or free_port()
        self.certs = certs
        self.args = list(args)
        self.directory = directory
        if certs:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", certs.server_cert,
                      "--tls-key-file", certs.server_key, "--tls-ca-cert-file", certs.ca,
                      "--tls-auth-clients", "yes" if auth_clients else "no"]
        else:
            listen = ["--port", str(self.port)]
        self.command = ["redis-server", *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        *(["--dir", str(directory)] if directory else []), *self.args]
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=redis_env())
        self.client = self.connect()
        if not wait_until(self.pings, 10):
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"redis-server on {self.port} did not answer within 10 s")

    def connect(self, **kwargs):
        tls = {}
        if self.certs:
            tls = dict(ssl=True, ssl_ca_certs=self.certs.ca, ssl_certfile=self.certs.client_cert,
                       ssl_keyfile=self.certs.client_key)
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5, **tls, **kwargs)

    def pings(self):
        try:
            return self.client.ping()
        except redis.RedisError:
            return False

    def url(self, ns=NS, db=0):
        return f"{'rediss' if self.certs else 'redis'}://127.0.0.1:{self.port}/{db}?ns={ns}"

    def role(self):
        return self.client.execute_command("ROLE")[0]

    def replicate(self, port):
        """REPLICAOF 127.0.0.1 port, or NO ONE for port None."""
        if port is None:
            self.client.execute_command("REPLICAOF", "NO", "ONE")
        else:
            self.client.execute_command("REPLICAOF", "127.0.0.1", str(port))

    def in_sync(self):
        """A replica whose link to its primary is up."""
        try:
            return self.client.info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def same_keys(source, replica, pattern):
    """The replica holds the source's keys matching pattern, with the same values."""
    try:
        keys = source.client.keys(pattern)
        return bool(keys) and all(replica.client.get(k) == source.client.get(k) for k in keys)
    except redis.RedisError:
        return False


class Sentinels:
    """Three `redis-server --sentinel` on free ports monitoring one primary
    (quorum 2), with short down-after and failover timeouts."""

    def __init__(self, directory, primary_port, count=3):
        self.procs, self.ports = [], []
        for i in range(count):
            port = free_port()
            conf = os.path.join(directory, f"sentinel-{port}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER_NAME} {SENTINEL_DOWN_AFTER_MS}\n"
                        f"sentinel failover-timeout {MASTER_NAME} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
                        f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            self.procs.append(subprocess.Popen(["redis-server", conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, env=redis_env()))
            self.ports.append(port)
        self.clients = [redis.Redis(port=p, decode_responses=True, socket_timeout=2) for p in self.ports]

    def _ask(self, client, *command):
        try:
            return client.execute_command(*command)
        except redis.RedisError:
            return None

    def ready(self, replicas=1):
        """Every sentinel knows the primary, its replicas and the other sentinels."""
        for c in self.clients:
            known = self._ask(c, "SENTINEL", "REPLICAS", MASTER_NAME) or []
            others = self._ask(c, "SENTINEL", "SENTINELS", MASTER_NAME) or []
            if len(known) < replicas or len(others) < len(self.clients) - 1:
                return False
        return True

    def primary_port(self):
        """The primary's port as the first sentinel that answers names it."""
        for c in self.clients:
            addr = self._ask(c, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            if addr:
                return int(addr[1])
        return None

    def remonitor(self, primary_port):
        """Every sentinel forgets the primary it watched and watches this one
        (an operator's move after a failover done without them)."""
        for c in self.clients:
            self._ask(c, "SENTINEL", "REMOVE", MASTER_NAME)
            c.execute_command("SENTINEL", "MONITOR", MASTER_NAME, "127.0.0.1", str(primary_port), "2")
            c.execute_command("SENTINEL", "SET", MASTER_NAME, "down-after-milliseconds", str(SENTINEL_DOWN_AFTER_MS),
                              "failover-timeout", str(SENTINEL_FAILOVER_TIMEOUT_MS))

    def url(self, ns, db=0, scheme="redis-sentinel"):
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"{scheme}://{hosts}/{db}?ns={ns}#{MASTER_NAME}"

    def stop(self):
        for c in self.clients:
            c.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def cluster_port():
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        port = random.randrange(20000, 30000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class Cluster:
    """A Redis Cluster of `masters` masters, each with one replica, made by
    `redis-cli --cluster create --cluster-replicas 1`."""

    def __init__(self, directory, masters=3):
        self.nodes = {}
        for _ in range(masters * 2):
            port = cluster_port()
            self.nodes[port] = RedisServer(port=port, directory=directory, args=[
                "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(directory, f"nodes-{port}.conf"),
                "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)])
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.nodes],
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=redis_env())
        if not wait_until(lambda: self.healthy(replicas=masters), 30, interval=0.2):
            self.stop()
            raise RuntimeError("the cluster did not come up with its replicas within 30 s")

    def _nodes_seen_by(self, port):
        text = self.nodes[port].client.execute_command("CLUSTER", "NODES")
        return [line.split() for line in text.splitlines() if line]

    def healthy(self, replicas):
        """cluster_state:ok on every live node, and `replicas` replicas
        connected (each master's link up) as the first live node sees it."""
        live = [p for p, n in self.nodes.items() if n.running()]
        try:
            if not all(self.nodes[p].client.cluster("INFO")["cluster_state"] == "ok" for p in live):
                return False
            connected = [f for f in self._nodes_seen_by(live[0])
                         if "slave" in f[2] and "fail" not in f[2] and f[7] == "connected"]
            return len(connected) >= replicas and all(self.nodes[p].role() == "master" or self.nodes[p].in_sync()
                                                      for p in live)
        except (redis.RedisError, KeyError):
            return False

    def master_of(self, key):
        """The port of the live master serving key's slot."""
        slot = self.keyslot(key)
        for p, n in self.nodes.items():
            if not n.running():
                continue
            try:
                for start, end, master, *_ in n.client.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        return int(master[1])
            except redis.RedisError:
                continue
        return None

    def replica_of(self, master_port):
        for p, n in self.nodes.items():
            if n.running() and p != master_port:
                info = n.client.info("replication")
                if info.get("role") == "slave" and int(info.get("master_port", 0)) == master_port:
                    return p
        return None

    def keyslot(self, key):
        live = next(n for n in self.nodes.values() if n.running())
        return live.client.execute_command("CLUSTER", "KEYSLOT", key)

    def replica_get(self, port, key):
        """GET on a replica (READONLY first: a cluster replica redirects otherwise)."""
        c = redis.Redis(port=port, decode_responses=True, socket_timeout=2)
        try:
            c.execute_command("READONLY")
            return c.get(key)
        except redis.RedisError:
            return None
        finally:
            c.close()

    def stop(self):
        for n in self.nodes.values():
            n.stop(signal.SIGKILL)
