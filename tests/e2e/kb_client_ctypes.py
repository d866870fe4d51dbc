"""The client half of the C ABI (kb_client_*, libkatsubushi.so) through ctypes."""

import ctypes

KB_OK, KB_INVALID_ARGUMENT, KB_UNAVAILABLE = 0, 1, 2


class KbClientConfig(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("servers", ctypes.POINTER(ctypes.c_char_p)),
        ("server_count", ctypes.c_size_t),
        ("timeout_ms", ctypes.c_uint32),
        ("attempt_timeout_ms", ctypes.c_uint32),
        ("random_start", ctypes.c_int),
        # Added after the first release (TLS).
        ("tls_ca_file", ctypes.c_char_p),
        ("tls_cert_file", ctypes.c_char_p),
        ("tls_key_file", ctypes.c_char_p),
        ("tls_server_name", ctypes.c_char_p),
        ("tls_skip_verify", ctypes.c_int),
    ]

# struct_size of a caller built before the TLS fields.
FIRST_RELEASE_SIZE = KbClientConfig.tls_ca_file.offset


def load(path):
    lib = ctypes.CDLL(path)
    lib.kb_client_config_init.argtypes = [ctypes.POINTER(KbClientConfig)]
    lib.kb_client_open.argtypes = [ctypes.POINTER(KbClientConfig), ctypes.POINTER(ctypes.c_void_p)]
    lib.kb_client_fetch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)]
    lib.kb_client_fetch_multi.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64),
                                          ctypes.c_size_t]
    lib.kb_client_close.argtypes = [ctypes.c_void_p]
    lib.kb_last_error.restype = ctypes.c_char_p
    return lib


class ClientError(Exception):
    def __init__(self, status, detail):
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


class Client:
    """kb_client_open; fetch()/fetch_multi() return IDs or raise ClientError."""

    def __init__(self, lib, servers, timeout_ms=0, attempt_timeout_ms=0, random_start=False, tls_ca_file=None,
                 tls_cert_file=None, tls_key_file=None, tls_server_name=None, tls_skip_verify=False,
                 struct_size=None):
        self.lib = lib
        config = KbClientConfig()
        lib.kb_client_config_init(ctypes.byref(config))
        encoded = (ctypes.c_char_p * len(servers))(*[s.encode() for s in servers])
        config.servers = ctypes.cast(encoded, ctypes.POINTER(ctypes.c_char_p))
        config.server_count = len(servers)
        config.timeout_ms, config.attempt_timeout_ms = timeout_ms, attempt_timeout_ms
        config.random_start = int(random_start)
        enc = lambda v: v.encode() if v is not None else None  # noqa: E731
        config.tls_ca_file, config.tls_cert_file = enc(tls_ca_file), enc(tls_cert_file)
        config.tls_key_file, config.tls_server_name = enc(tls_key_file), enc(tls_server_name)
        config.tls_skip_verify = int(tls_skip_verify)
        if struct_size is not None:
            config.struct_size = struct_size
        self.handle = ctypes.c_void_p()
        status = lib.kb_client_open(ctypes.byref(config), ctypes.byref(self.handle))
        if status != KB_OK:
            raise ClientError(status, lib.kb_last_error().decode())

    def fetch(self):
        out = ctypes.c_uint64(12345)
        status = self.lib.kb_client_fetch(self.handle, ctypes.byref(out))
        if status != KB_OK:
            assert out.value == 0, "an ID slot was left non-zero on error"
            raise ClientError(status, self.lib.kb_last_error().decode())
        return out.value

    def fetch_multi(self, n):
        out = (ctypes.c_uint64 * n)(*([12345] * n))
        status = self.lib.kb_client_fetch_multi(self.handle, out, n)
        if status != KB_OK:
            if status != KB_INVALID_ARGUMENT:
                assert not any(out), "an ID slot was left non-zero on error"
            raise ClientError(status, self.lib.kb_last_error().decode())
        return list(out)

    def close(self):
        if self.handle:
            self.lib.kb_client_close(self.handle)
            self.handle = None
