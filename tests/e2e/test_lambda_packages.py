"""The AWS Lambda packages of scripts/package-lambda: what every ELF in them
needs (Amazon Linux 2023 has glibc 2.34 and libstdc++ up to GLIBCXX_3.4.29),
and each zip unpacked into an otherwise empty root (chroot: the zip's files,
the base glibc/libstdc++ libraries, and for the C layer a Python) and run
there against the fake Lambda APIs and a real redis-server."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from pymemcache.client.base import Client as Memcache

from conftest import free_port, ms_of, worker_of
from fake_lambda import FakeLambda
from test_redis_lease import NS, rds  # noqa: F401  (rds is a fixture)

ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
ZIPS = ("katsubushi-extension-layer.zip", "katsubushi-runtime.zip", "katsubushi-c-layer.zip")
# What provided.al2023 has (and what Lambda's own runtimes rely on).
BASE_LIBRARIES = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
                  "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libgcc_s.so.1", "libstdc++.so.6"}
# The newest symbol versions Amazon Linux 2023 provides.
MAX_VERSIONS = {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13), "GCC": (11,)}
# Lambda's LD_LIBRARY_PATH for provided.al2023 (the parts that exist here).
LAMBDA_LD_LIBRARY_PATH = "/lib64:/usr/lib64:/var/task:/var/task/lib:/opt/lib"


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    build = os.environ.get("KATSUBUSHI_BUILD_DIR")
    if not build:
        pytest.fail("KATSUBUSHI_BUILD_DIR must name a KATSUBUSHI_STATIC_RUNTIME build")
    out = tmp_path_factory.mktemp("packages")
    subprocess.run([os.path.join(ROOT, "scripts", "package-lambda"), str(out)], check=True,
                   env={**os.environ, "BUILD_DIR": build}, stdout=subprocess.DEVNULL, timeout=600)
    return out


def unpack(zip_path, into):
    """Unpacks keeping the mode bits, as Lambda does."""
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            path = z.extract(info, into)
            mode = info.external_attr >> 16
            if mode:
                os.chmod(path, mode & 0o7777)
    return into


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def readelf(flag, path):
    return subprocess.run(["readelf", flag, "-W", path], check=True, capture_output=True,
                          text=True).stdout


def test_the_three_zips_have_the_documented_layout(packages):
    names = {z: sorted(zipfile.ZipFile(packages / z).namelist()) for z in ZIPS}
    assert "extensions/katsubushi" in names["katsubushi-extension-layer.zip"]
    assert "bootstrap" in names["katsubushi-runtime.zip"]
    assert {"lib/libkatsubushi.so", "python/katsubushi.py"} <= set(names["katsubushi-c-layer.zip"])
    for z in ZIPS:
        for info in zipfile.ZipFile(packages / z).infolist():
            if info.filename in ("extensions/katsubushi", "bootstrap"):
                assert (info.external_attr >> 16) & 0o111, f"{info.filename} is not executable"


def version_names(text):
    return re.findall(r"Name: ([A-Z]+)_([0-9][0-9.]*)", text)


def test_every_elf_needs_only_the_base_system_and_old_symbol_versions(packages, tmp_path):
    checked = 0
    for z in ZIPS:
        tree = unpack(packages / z, tmp_path / z)
        shipped = {f for _, _, files in os.walk(tree) for f in files}
        # Symbol versions a shipped library defines (OpenSSL's, for the
        # libssl/libcrypto the C layer carries) are met inside the zip.
        defined = set()
        for dirpath, _, files in os.walk(tree):
            for f in files:
                path = os.path.join(dirpath, f)
                if is_elf(path):
                    definitions = readelf("-V", path).split("Version needs section")[0]
                    defined.update(version_names(definitions))
        for dirpath, _, files in os.walk(tree):
            for f in files:
                path = os.path.join(dirpath, f)
                if not is_elf(path):
                    continue
                checked += 1
                needed = re.findall(r"\(NEEDED\).*\[(.*)\]", readelf("-d", path))
                missing = [n for n in needed if n not in BASE_LIBRARIES and n not in shipped]
                assert not missing, f"{z}:{f} needs {missing}, neither in AL2023 nor in the zip"
                for family, version in version_names(readelf("-V", path)):
                    if (family, version) in defined:
                        continue
                    assert family in MAX_VERSIONS, f"{z}:{f} needs {family}_{version}"
                    numbers = tuple(int(x) for x in version.split("."))
                    assert numbers <= MAX_VERSIONS[family], f"{z}:{f} needs {family}_{version}"
    assert checked >= 3


class EmptyRoot:
    """A directory holding one zip's files where Lambda puts them, the base
    libraries, and nothing else; programs run in it with chroot."""

    def __init__(self, path):
        self.path = path
        for d in ("lib64", "usr/lib64", "tmp", "etc"):
            (path / d).mkdir(parents=True, exist_ok=True)
        # Numeric addresses only: no resolver configuration is needed.
        (path / "etc" / "hosts").write_text("127.0.0.1 localhost\n")

    def copy_libraries_of(self, *binaries):
        """The host's copies of what these ELF files load (the base system)."""
        for binary in binaries:
            out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
            for lib in re.findall(r"(/\S+\.so[.\d]*)", out):
                self.copy(lib, "/lib64/" + os.path.basename(lib))

    def copy(self, src, dst):
        target = self.path / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(os.path.realpath(src), target)

    def popen(self, argv, env, **kwargs):
        return subprocess.Popen([CHROOT, str(self.path), *argv], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)

    @contextlib.contextmanager
    def running(self, argv, env):
        """popen() for a process the test stops itself: killed if the test
        leaves it running, and its output printed for the test's log."""
        proc = self.popen(argv, env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            print(proc.communicate()[0])


CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


@pytest.fixture
def fake():
    f = FakeLambda()
    yield f
    f.close()


@needs_root
def test_extension_layer_runs_in_an_empty_root(packages, tmp_path, rds, fake):
    root = EmptyRoot(tmp_path / "root")
    unpack(packages / "katsubushi-extension-layer.zip", root.path / "opt")
    root.copy_libraries_of(str(root.path / "opt" / "extensions" / "katsubushi"))
    port = free_port()
    env = {"AWS_LAMBDA_RUNTIME_API": fake.api, "LD_LIBRARY_PATH": LAMBDA_LD_LIBRARY_PATH,
           "KATSUBUSHI_REDIS": rds.url(), "KATSUBUSHI_PORT": str(port), "KATSUBUSHI_THREADS": "1",
           "_HANDLER": "function.handler"}
    # Lambda starts every file in /opt/extensions, with no arguments.
    with root.running(["/opt/extensions/katsubushi"], env) as proc:
        ext = fake.extension()
        assert ext.name == "katsubushi"
        fake.send_invoke(ext)
        mc = Memcache(("127.0.0.1", port), connect_timeout=2, timeout=2)
        first = int(mc.get("id"))
        mc.close()
        key = f"{NS}:id:{worker_of(first)}"
        assert rds.client.exists(key) == 1
        deadline = fake.send_shutdown(ext)
        assert proc.wait(timeout=5) == 0
        assert time.time() * 1000 < deadline
        assert rds.client.exists(key) == 0


@needs_root
def test_runtime_zip_runs_in_an_empty_root(packages, tmp_path, rds, fake):
    root = EmptyRoot(tmp_path / "root")
    unpack(packages / "katsubushi-runtime.zip", root.path / "var" / "task")
    root.copy_libraries_of(str(root.path / "var" / "task" / "bootstrap"))
    env = {"AWS_LAMBDA_RUNTIME_API": fake.api, "LD_LIBRARY_PATH": LAMBDA_LD_LIBRARY_PATH,
           "LAMBDA_TASK_ROOT": "/var/task", "_HANDLER": "katsubushi", "KATSUBUSHI_REDIS": rds.url()}
    with root.running(["/var/task/bootstrap"], env) as proc:
        event = {"version": "2.0", "rawPath": "/id", "rawQueryString": "", "headers": {},
                 "requestContext": {"http": {"method": "GET", "path": "/id"}}, "isBase64Encoded": False}
        kind, reply = fake.invoke("pkg-1", event)
        assert kind == "response" and reply["statusCode"] == 200, reply
        issued = int(reply["body"])
        key = f"{NS}:id:{worker_of(issued)}"
        assert rds.client.exists(key) == 1
        proc.send_signal(signal.SIGTERM)  # what Lambda sends the runtime at shutdown
        assert proc.wait(timeout=5) == 0
        assert rds.client.exists(key) == 0


@needs_root
def test_c_layer_imports_and_issues_in_an_empty_root(packages, tmp_path, rds):
    root = EmptyRoot(tmp_path / "root")
    unpack(packages / "katsubushi-c-layer.zip", root.path / "opt")
    # A Python runtime, as Lambda's python runtimes provide: the interpreter,
    # its standard library and what they load.
    python = os.path.realpath(sys.executable)
    stdlib = os.path.dirname(os.__file__)
    root.copy(python, python)
    shutil.copytree(stdlib, root.path / stdlib.lstrip("/"), symlinks=True,
                    ignore=shutil.ignore_patterns("test", "idlelib", "tkinter", "__pycache__",
                                                  "site-packages", "dist-packages"))
    dynload = os.path.join(stdlib, "lib-dynload")
    root.copy_libraries_of(python, *[os.path.join(dynload, f) for f in os.listdir(dynload)])
    # The base libraries libkatsubushi.so needs (libstdc++ and friends), not
    # what the layer brings itself.
    out = subprocess.run(["ldd", str(root.path / "opt" / "lib" / "libkatsubushi.so")],
                         capture_output=True, text=True).stdout
    for name, lib in re.findall(r"(\S+) => (/\S+)", out):
        if name in BASE_LIBRARIES:
            root.copy(lib, "/lib64/" + name)
    function = (
        "import katsubushi, sys\n"
        f"gen = katsubushi.Generator(redis_url='{rds.url()}', min_worker_id=30, max_worker_id=39)\n"
        "gen.invocation_begin()\n"
        "ids = [gen.next_id() for _ in range(100)] + gen.next_ids(50)\n"
        "assert len(set(ids)) == 150 and ids == sorted(ids)\n"
        "print(ids[-1], gen.worker_id(), gen.decode(ids[-1])[1])\n"
        "gen.close()\n"
        "try:\n"
        "    gen.next_id()\n"
        "except katsubushi.Error as e:\n"
        "    print('closed' if e.status == katsubushi.CLOSED else 'wrong status')\n")
    # Lambda puts /opt/python on sys.path; -I keeps the host's site out.
    env = {"LD_LIBRARY_PATH": LAMBDA_LD_LIBRARY_PATH, "PYTHONPATH": "/opt/python",
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = root.popen([python, "-c", function], env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    last, worker, decoded_worker = (int(x) for x in out.split("\n")[0].split())
    assert 30 <= worker <= 39 and worker == decoded_worker == worker_of(last)
    assert out.split("\n")[1] == "closed"
    assert rds.client.keys(f"{NS}:id:*") == []  # released by close()
    assert int(rds.client.get("{%s:id:%d}:watermark" % (NS, worker))) >= ms_of(last)
