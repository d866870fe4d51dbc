"""katsubushi: unique 64-bit IDs from inside a Python process (an AWS Lambda
function, say), through libkatsubushi.so's C ABI with ctypes.

    import katsubushi
    gen = katsubushi.Generator(redis_url="redis://my-redis:6379/0?ns=katsubushi")

    def handler(event, context):
        gen.invocation_begin()          # confirms the worker id lease (one round trip)
        return {"id": str(gen.next_id())}

In the katsubushi-c-layer.zip layer this file is /opt/python/katsubushi.py and
the library /opt/lib/libkatsubushi.so (Lambda puts /opt/python on sys.path).
Elsewhere, KATSUBUSHI_LIB names the library.

Errors raise katsubushi.Error with the library's status and message; while
no worker id can be confirmed (Redis unreachable, the range exhausted) that is
UNAVAILABLE, answered at once during the library's backoff window. A closed
generator raises CLOSED. Thread-safe, except close() against other calls.
"""

import ctypes
import glob
import os
import threading

OK, INVALID_ARGUMENT, UNAVAILABLE, OUT_OF_RANGE, FORKED, CLOSED, INTERNAL = range(7)
ABI_VERSION = 1
MAX_IDS_PER_CALL = 4096


class Error(Exception):
    def __init__(self, status, message):
        super().__init__(f"katsubushi: {message} (status {status})")
        self.status = status
        self.message = message


class _Config(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("worker_id", ctypes.c_uint32),
        ("redis_url", ctypes.c_char_p),
        ("min_worker_id", ctypes.c_uint32),
        ("max_worker_id", ctypes.c_uint32),
        ("lease_ttl_ms", ctypes.c_uint32),
        ("js_safe_id", ctypes.c_int),
        ("redis_tls_ca_file", ctypes.c_char_p),
        ("redis_tls_cert_file", ctypes.c_char_p),
        ("redis_tls_key_file", ctypes.c_char_p),
        ("redis_tls_skip_verify", ctypes.c_int),
        ("redis_min_replicas", ctypes.c_uint32),
        ("redis_replica_timeout_ms", ctypes.c_int32),
    ]


class _IdParts(ctypes.Structure):
    _fields_ = [("unix_millis", ctypes.c_int64), ("worker_id", ctypes.c_uint32),
                ("sequence", ctypes.c_uint32)]


_lib = None
_lib_lock = threading.Lock()


def _library_path():
    if os.environ.get("KATSUBUSHI_LIB"):
        return os.environ["KATSUBUSHI_LIB"]
    here = os.path.dirname(os.path.abspath(__file__))
    layer = os.path.join(here, os.pardir, "lib", "libkatsubushi.so")  # /opt/python -> /opt/lib
    return layer if os.path.exists(layer) else "libkatsubushi.so"


def _declare(lib):
    """Declares the C ABI's signatures on a loaded libkatsubushi.so."""
    lib.kb_config_init.argtypes = [ctypes.POINTER(_Config)]
    lib.kb_config_init.restype = None
    lib.kb_open.argtypes = [ctypes.POINTER(_Config), ctypes.POINTER(ctypes.c_void_p)]
    lib.kb_next_id.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)]
    lib.kb_next_ids.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
    lib.kb_worker_id.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    lib.kb_decode.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(_IdParts)]
    lib.kb_invocation_begin.argtypes = [ctypes.c_void_p]
    lib.kb_close.argtypes = [ctypes.c_void_p]
    for name in ("kb_open", "kb_next_id", "kb_next_ids", "kb_worker_id", "kb_decode",
                 "kb_invocation_begin", "kb_close"):
        getattr(lib, name).restype = ctypes.c_int
    lib.kb_strerror.restype = ctypes.c_char_p
    lib.kb_last_error.restype = ctypes.c_char_p
    lib.kb_abi_version.restype = ctypes.c_uint32
    return lib


def _load():
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = _library_path()
        # The libraries the layer carries beside it (hiredis), loaded first so
        # that the dynamic loader finds them whatever LD_LIBRARY_PATH says.
        for dep in sorted(glob.glob(os.path.join(os.path.dirname(path), "libhiredis*.so*"))):
            ctypes.CDLL(dep, mode=ctypes.RTLD_GLOBAL)
        lib = _declare(ctypes.CDLL(path))
        if lib.kb_abi_version() != ABI_VERSION:
            raise Error(INTERNAL, f"{path} has ABI {lib.kb_abi_version()}, this binding {ABI_VERSION}")
        _lib = lib
        return lib


def _check(lib, status):
    if status != OK:
        raise Error(status, (lib.kb_last_error() or b"").decode(errors="replace"))


class Generator:
    """One ID generator: a static worker_id, or one leased through redis_url
    (acquired at the first ID, never at construction). The redis_tls_* and
    redis_*replica* arguments are kb_config's fields of the same names."""

    def __init__(self, redis_url=None, worker_id=0, min_worker_id=0, max_worker_id=0,
                 lease_ttl_ms=0, js_safe_id=False, redis_tls_ca_file=None, redis_tls_cert_file=None,
                 redis_tls_key_file=None, redis_tls_skip_verify=False, redis_min_replicas=0,
                 redis_replica_timeout_ms=0):
        self._lib = _load()
        config = _Config()
        self._lib.kb_config_init(ctypes.byref(config))
        config.worker_id = worker_id
        config.redis_url = redis_url.encode() if redis_url else None
        config.min_worker_id, config.max_worker_id = min_worker_id, max_worker_id
        config.lease_ttl_ms, config.js_safe_id = lease_ttl_ms, 1 if js_safe_id else 0
        config.redis_tls_ca_file = redis_tls_ca_file.encode() if redis_tls_ca_file else None
        config.redis_tls_cert_file = redis_tls_cert_file.encode() if redis_tls_cert_file else None
        config.redis_tls_key_file = redis_tls_key_file.encode() if redis_tls_key_file else None
        config.redis_tls_skip_verify = 1 if redis_tls_skip_verify else 0
        config.redis_min_replicas = redis_min_replicas
        config.redis_replica_timeout_ms = redis_replica_timeout_ms
        self._handle = ctypes.c_void_p()
        _check(self._lib, self._lib.kb_open(ctypes.byref(config), ctypes.byref(self._handle)))
        self._closed = False

    def next_id(self):
        out = ctypes.c_uint64()
        _check(self._lib, self._lib.kb_next_id(self._handle, ctypes.byref(out)))
        return out.value

    def next_ids(self, n):
        if not 1 <= n <= MAX_IDS_PER_CALL:
            raise Error(INVALID_ARGUMENT, f"n must be between 1 and {MAX_IDS_PER_CALL}")
        out = (ctypes.c_uint64 * n)()
        _check(self._lib, self._lib.kb_next_ids(self._handle, out, n))
        return list(out)

    def invocation_begin(self):
        _check(self._lib, self._lib.kb_invocation_begin(self._handle))

    def worker_id(self):
        out = ctypes.c_uint32()
        _check(self._lib, self._lib.kb_worker_id(self._handle, ctypes.byref(out)))
        return out.value

    def decode(self, id_):
        """(unix_millis, worker_id, sequence) of an ID of this generator's layout."""
        parts = _IdParts()
        _check(self._lib, self._lib.kb_decode(self._handle, id_, ctypes.byref(parts)))
        return parts.unix_millis, parts.worker_id, parts.sequence

    def close(self):
        """Gives a leased worker id back. Later calls raise Error(CLOSED); a
        second close() does nothing (the library keeps the handle valid)."""
        if self._closed:
            return
        self._closed = True
        _check(self._lib, self._lib.kb_close(self._handle))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if getattr(self, "_handle", None) and not getattr(self, "_closed", True):
                self._closed = True
                self._lib.kb_close(self._handle)
        except Exception:  # a finalizer never raises
            pass
