"""The C ABI (libkatsubushi.so) through ctypes, as a Python program would use it.

Run as a script it is a library user for the tests: it opens a generator and
prints "<wall ms> ok <id>" or "<wall ms> err <status>" for each call until
killed or its duration ends; each new error message (kb_last_error) goes to
stderr once. An optional seventh argument, a JSON object, sets further
kb_config fields (the TLS files, redis_replica_timeout_ms, ...).
"""

import ctypes
import json
import os
import select
import sys
import time

# The shipped binding (python/katsubushi.py) defines the C structs and status
# codes once; this raw wrapper returns statuses instead of raising, so tests
# can assert them, and shares the layouts so that they are tested too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                                "python"))
import katsubushi  # noqa: E402

KB_OK, KB_INVALID_ARGUMENT, KB_UNAVAILABLE = katsubushi.OK, katsubushi.INVALID_ARGUMENT, katsubushi.UNAVAILABLE
KB_OUT_OF_RANGE, KB_FORKED, KB_CLOSED = katsubushi.OUT_OF_RANGE, katsubushi.FORKED, katsubushi.CLOSED
KbConfig = katsubushi._Config
KbIdParts = katsubushi._IdParts


def load(path):
    return katsubushi._declare(ctypes.CDLL(path))


class Generator:
    def __init__(self, lib, worker_id=0, redis_url=None, min_id=0, max_id=0, ttl_ms=0, **fields):
        self.lib = lib
        config = KbConfig()
        lib.kb_config_init(ctypes.byref(config))
        config.worker_id = worker_id
        config.redis_url = redis_url.encode() if redis_url else None
        config.min_worker_id, config.max_worker_id, config.lease_ttl_ms = min_id, max_id, ttl_ms
        known = {name for name, _ in KbConfig._fields_}
        for name, value in fields.items():
            # A field the binding lacks would be a plain Python attribute that
            # never reaches the library: refuse it instead.
            if name not in known:
                raise RuntimeError(f"python/katsubushi.py's kb_config has no field {name}")
            setattr(config, name, value.encode() if isinstance(value, str) else value)
        self.handle = ctypes.c_void_p()
        status = lib.kb_open(ctypes.byref(config), ctypes.byref(self.handle))
        if status != KB_OK:
            raise RuntimeError(f"kb_open: {status} {lib.kb_last_error().decode()}")

    def next_id(self):
        out = ctypes.c_uint64()
        status = self.lib.kb_next_id(self.handle, ctypes.byref(out))
        return status, out.value

    def next_ids(self, n):
        out = (ctypes.c_uint64 * n)()
        status = self.lib.kb_next_ids(self.handle, out, n)
        return status, list(out)

    def worker_id(self):
        out = ctypes.c_uint32()
        status = self.lib.kb_worker_id(self.handle, ctypes.byref(out))
        return status, out.value

    def invocation_begin(self):
        return self.lib.kb_invocation_begin(self.handle)

    def close(self):
        # The handle stays valid after kb_close (a tombstone): keep it, so
        # that calls after close reach the library and get KB_CLOSED.
        return self.lib.kb_close(self.handle)


def main():
    lib_path, redis_url, min_id, max_id, ttl_ms, duration = sys.argv[1:7]
    fields = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
    lib = load(lib_path)
    gen = Generator(lib, redis_url=redis_url, min_id=int(min_id), max_id=int(max_id), ttl_ms=int(ttl_ms),
                    **fields)
    end = time.monotonic() + float(duration)
    last_error = None
    while time.monotonic() < end:
        status, id_ = gen.next_id()
        now = time.time() * 1000
        print(f"{now:.3f} ok {id_}" if status == KB_OK else f"{now:.3f} err {status}", flush=True)
        if status != KB_OK:
            message = (lib.kb_last_error() or b"").decode(errors="replace")
            if message != last_error:
                print(f"{now:.3f} {message}", file=sys.stderr, flush=True)
                last_error = message
        # Not time.sleep: under libfaketime with FAKETIME_DONT_FAKE_MONOTONIC
        # (test_lease_partition.py) its absolute clock_nanosleep on the
        # monotonic clock fails with EINVAL.
        select.select([], [], [], 0.002)
    print(f"close {gen.close()}", flush=True)


if __name__ == "__main__":
    main()
