#!/usr/bin/python3
"""Checks the built images as a user runs them (scripts/container-test builds
them first): katsubushi-cpp:minimal and katsubushi-cpp:grpc, then
docker-compose.yml's Redis and two leased instances.

Every published port is bound to 127.0.0.1 on a free port; every container
started here is removed at the end, by name.

Usage: check_images.py --engine podman|docker
"""

import argparse
import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEALTH_CHECK = "/usr/local/bin/katsubushi"
SIGTERM_BOUND_S = 1.0  # the bound: SIGTERM -> exit 0 within 1 s
START_TIMEOUT_S = 30   # a first Redis lease takes 3 s of discovery
WORKER_SHIFT = 12      # default layout: | ms | worker id (10 bits) | sequence (12 bits) |


class Engine:
    def __init__(self, kind):
        self.kind = kind
        if kind == "podman":
            # Flags, not /etc edits: crun fails on this host's hybrid cgroups,
            # and hard limits cannot be raised here.
            self.argv = ["podman", "--runtime", "runc"]
            self.run_flags = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
        else:
            self.argv = ["docker"]
            self.run_flags = []
        self.started = []

    def __call__(self, *args, check=True, timeout=120):
        r = subprocess.run(self.argv + list(args), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(self.argv + list(args))}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def run(self, name, image, args, ports=(), flags=()):
        self("rm", "-f", name, check=False)
        publish = [f"-p127.0.0.1:{host}:{container}" for container, host in ports]
        self("run", "-d", "--name", name, *self.run_flags, *flags, *publish, image, *args)
        self.started.append(name)

    def inspect(self, name, fmt):
        return self("inspect", "--format", fmt, name).stdout.strip()

    def remove_all(self):
        for name in self.started:
            self("rm", "-f", name, check=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memcached_get(port, timeout=2.0):
    """One `get id` on 127.0.0.1:port; the ID, or None when not (yet) served."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"get id\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n") and b"ERROR" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    m = re.match(rb"VALUE id 0 \d+\r\n(\d+)\r\nEND\r\n$", reply)
    return int(m.group(1)) if m else None


def wait_id(port, what):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        id_ = memcached_get(port)
        if id_ is not None:
            return id_
        time.sleep(0.1)
    raise AssertionError(f"{what}: no ID on 127.0.0.1:{port} within {START_TIMEOUT_S} s")


def worker_of(id_):
    return (id_ >> WORKER_SHIFT) & 0x3FF


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok  {what}")


def check_non_root(engine, name):
    pid = int(engine.inspect(name, "{{.State.Pid}}"))
    with open(f"/proc/{pid}/status") as f:
        uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
    check(uids == ["10001"] * 4, f"{name}: runs as uid 10001 (katsubushi), not root: Uid {uids}")
    check(engine.inspect(name, "{{.Config.User}}") == "katsubushi", f"{name}: image USER katsubushi")


def check_no_shell(engine, name):
    r = engine("exec", name, "/bin/sh", "-c", "true", check=False)
    check(r.returncode != 0, f"{name}: no shell in the image")


def check_health_check(engine, name, args, expect):
    r = engine("exec", name, HEALTH_CHECK, "-health-check", *args, check=False)
    check(r.returncode == 0 and r.stdout.strip() == expect,
          f"{name}: katsubushi -health-check {' '.join(args)} -> {r.stdout.strip() or r.stderr.strip()}")


def check_image_healthcheck(engine, name):
    """The image's own HEALTHCHECK (katsubushi -health-check, memcached port)."""
    if engine.kind == "podman":
        r = engine("healthcheck", "run", name, check=False)
        check(r.returncode == 0, f"{name}: HEALTHCHECK passes (podman healthcheck run: {r.stdout.strip()})")
        return
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        status = engine.inspect(name, "{{.State.Health.Status}}")
        if status == "healthy":
            break
        time.sleep(0.5)
    check(status == "healthy", f"{name}: HEALTHCHECK reports {status}")


def check_sigterm(engine, name):
    """SIGTERM to the server (PID 1 of the container) -> gone within 1 s, exit 0."""
    pid = int(engine.inspect(name, "{{.State.Pid}}"))
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while os.path.exists(f"/proc/{pid}") and time.monotonic() - started < 10:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    engine("wait", name, timeout=30)
    code = engine.inspect(name, "{{.State.ExitCode}}")
    check(code == "0" and elapsed < SIGTERM_BOUND_S,
          f"{name}: SIGTERM -> exit {code} after {elapsed * 1000:.0f} ms (bound {SIGTERM_BOUND_S * 1000:.0f} ms)")


def grpc_stubs(out):
    for include, proto in [(os.path.join(ROOT, "proto"), "katsubushi.proto")]:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", proto], check=True, timeout=60)
    sys.path.insert(0, out)
    return importlib.import_module("katsubushi_pb2"), importlib.import_module("katsubushi_pb2_grpc")


def check_variant(engine, variant, tmp):
    image = f"katsubushi-cpp:{variant}"
    name = f"kbct-{variant}"
    print(f"{image}:")
    mc, http = free_port(), free_port()
    ports = [(11212, mc), (8080, http)]
    args = ["-worker-id=5", "-http-port=8080"]
    if variant == "grpc":
        grpc_port = free_port()
        ports.append((50051, grpc_port))
        args.append("-grpc-port=50051")
    engine.run(name, image, args, ports)
    id_ = wait_id(mc, name)
    check(worker_of(id_) == 5, f"{name}: memcached get from the host -> {id_} (worker id 5)")
    check_health_check(engine, name, ["-http-port=8080"], "healthy: HTTP 127.0.0.1:8080/healthz")
    check_image_healthcheck(engine, name)
    check_non_root(engine, name)
    check_no_shell(engine, name)
    if variant == "grpc":
        import grpc
        pb, pb_grpc = grpc_stubs(tmp)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT_S)
            got = pb_grpc.GeneratorStub(channel).Fetch(pb.FetchRequest(), timeout=5).id
        check(worker_of(got) == 5 and got > id_, f"{name}: gRPC Fetch from the host -> {got}")
    else:
        r = engine("run", "--rm", *engine.run_flags, image, "-worker-id=1", "-grpc-port=50051", check=False)
        check(r.returncode == 1 and "cannot load the gRPC module" in r.stdout + r.stderr,
              f"{name}: -grpc-port without the module is a clear start-up error (exit {r.returncode})")
    check_sigterm(engine, name)


def check_cpu_limit(engine):
    """The default thread count follows the container's CPU limit: with
    --cpus=0.5 the server runs as many threads as with -threads=1 (memcached
    and HTTP fronts), says so in its log, and an explicit -threads wins."""
    image = "katsubushi-cpp:minimal"
    print(f"{image} with a CPU limit:")

    def threads(name, args, flags):
        mc, http = free_port(), free_port()
        engine.run(name, image, ["-worker-id=5", "-http-port=8080", *args], [(11212, mc), (8080, http)], flags)
        wait_id(mc, name)
        pid = int(engine.inspect(name, "{{.State.Pid}}"))
        count = len(os.listdir(f"/proc/{pid}/task"))
        log = engine("logs", name).stderr + engine("logs", name).stdout
        engine("rm", "-f", name, check=False)
        return count, log

    limited, log = threads("kbct-cpus", [], ["--cpus=0.5"])
    one, _ = threads("kbct-threads1", ["-threads=1"], [])
    m = re.search(r"(\d+) threads?: (cgroup [^\n\"]*)", log)
    check(limited == one and m is not None and m.group(1) == "1",
          f"--cpus=0.5: {limited} threads, as with -threads=1 ({one}); log: {m.group(0) if m else log[-500:]}")
    explicit, _ = threads("kbct-threads3", ["-threads=3"], ["--cpus=0.5"])
    check(explicit == one + 2 * 2, f"--cpus=0.5 -threads=3: {explicit} threads (-threads=1: {one}, +2 per front)")


def check_arm64_image(engine, tmp):
    """The linux/arm64 build of the minimal image: its own files (binary,
    glibc, loader) run under qemu-user from the exported tree, since this
    host may have no binfmt registration to run an arm64 container."""
    image = "katsubushi-cpp:arm64"
    print(f"{image}:")
    arch = engine("image", "inspect", "--format", "{{.Architecture}}", image).stdout.strip()
    check(arch == "arm64", f"{image}: image architecture {arch}")
    name = "kbct-arm64"
    engine("rm", "-f", name, check=False)
    engine("create", "--name", name, image)
    engine.started.append(name)
    tree = os.path.join(tmp, "arm64-rootfs")
    os.makedirs(tree)
    export = subprocess.Popen(engine.argv + ["export", name], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", tree], stdin=export.stdout, check=True, timeout=120)
    export.wait(timeout=60)
    binary = os.path.join(tree, "usr/local/bin/katsubushi")
    kind = subprocess.run(["file", "-b", binary], capture_output=True, text=True).stdout
    check("ARM aarch64" in kind, f"{image}: the server is an arm64 ELF")
    port = free_port()
    proc = subprocess.Popen(["qemu-aarch64-static", "-L", tree, binary, "-worker-id=9", f"-port={port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        id_ = wait_id(port, image)
        check(worker_of(id_) == 9, f"{image}: memcached get under qemu -> {id_} (worker id 9)")
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=10) == 0, f"{image}: SIGTERM -> exit 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def compose_argv(engine, project, path):
    if engine.kind == "podman":
        return ["podman-compose", "--podman-args", "--runtime runc",
                "--podman-run-args", " ".join(engine.run_flags), "-p", project, "-f", path]
    return ["docker", "compose", "-p", project, "-f", path]


def check_compose(engine, tmp):
    """docker-compose.yml as written, except: published ports on 127.0.0.1
    and free (the machine is shared), and the images already built."""
    print("docker-compose.yml:")
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    published = {}
    for svc_name, svc in compose["services"].items():
        svc.pop("build", None)
        rewritten = []
        for spec in svc.get("ports", []):
            container = int(str(spec).rsplit(":", 1)[1])
            host = free_port()
            published[(svc_name, container)] = host
            rewritten.append(f"127.0.0.1:{host}:{container}")
        if rewritten:
            svc["ports"] = rewritten
    path = os.path.join(tmp, "docker-compose.yml")
    with open(path, "w") as f:
        yaml.safe_dump(compose, f)
    project = "kbct"
    argv = compose_argv(engine, project, path)

    def compose_run(*args, check_rc=True):
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=300)
        if check_rc and r.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {r.returncode}\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        return r

    def container(service):
        for candidate in (f"{project}_{service}_1", f"{project}-{service}-1"):
            if engine("container", "inspect", candidate, check=False).returncode == 0:
                return candidate
        raise AssertionError(f"no container for service {service}")

    def lock_keys():
        r = engine("exec", container("redis"), "redis-cli", "--scan", "--pattern", "katsubushi:id:*")
        return sorted(r.stdout.split())

    leased = [n for n in compose["services"] if n.startswith("katsubushi")]
    compose_run("down", check_rc=False)
    try:
        compose_run("up", "-d")
        ids = {n: wait_id(published[(n, 11212)], n) for n in leased}
        workers = {n: worker_of(i) for n, i in ids.items()}
        check(len(set(workers.values())) == len(leased), f"leased instances hold distinct worker ids: {workers}")
        keys = lock_keys()
        check(keys == sorted(f"katsubushi:id:{w}" for w in workers.values()),
              f"Redis holds exactly their lock keys: {keys}")
        for n in leased:
            test = compose["services"][n]["healthcheck"]["test"]
            check(test[0] == "CMD" and test[1] == HEALTH_CHECK and "-health-check" in test,
                  f"{n}: compose healthcheck runs the binary: {test[1:]}")
            r = engine("exec", container(n), *test[1:], check=False)
            check(r.returncode == 0 and r.stdout.startswith("healthy: HTTP"),
                  f"{n}: its healthcheck passes: {r.stdout.strip()}")
        started = time.monotonic()
        compose_run("stop", *leased)
        stopped = time.monotonic() - started
        for n in leased:
            code = engine.inspect(container(n), "{{.State.ExitCode}}")
            check(code == "0", f"{n}: stopped with exit 0")
        keys = lock_keys()
        check(keys == [], f"worker ids released on stop (lock keys left: {keys}); stop took {stopped:.1f} s")
    except AssertionError:
        for n in leased:
            r = engine("logs", container(n), check=False)
            print(f"--- {n} logs ---\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        raise
    finally:
        compose_run("down", check_rc=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["podman", "docker"], required=True)
    args = ap.parse_args()
    engine = Engine(args.engine)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for variant in ("minimal", "grpc"):
                check_variant(engine, variant, tmp)
            check_cpu_limit(engine)
            if engine("image", "inspect", "katsubushi-cpp:arm64", check=False).returncode == 0:
                check_arm64_image(engine, tmp)
            check_compose(engine, tmp)
    except AssertionError as e:
        print(f"FAILED: {e}")
        return 1
    finally:
        engine.remove_all()
    print("all container checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
