/* katsubushi.h: the C ABI of the katsubushi ID generator (libkatsubushi.so).
 *
 * Unique, time-ordered 64-bit IDs (snowflake: 41-bit ms since 2015-01-01Z,
 * 10-bit worker id, 12-bit sequence) from inside your process, with a static
 * worker id or one leased through Redis — compatible with go-katsubushi and
 * katsubushi-cpp servers sharing the same namespace.
 *
 *   kb_config config;
 *   kb_config_init(&config);
 *   config.redis_url = "redis://my-redis:6379/0?ns=katsubushi";
 *   kb_generator* gen;
 *   if (kb_open(&config, &gen) != KB_OK) fprintf(stderr, "%s\n", kb_last_error());
 *   kb_invocation_begin(gen);          // at the start of each Lambda event
 *   uint64_t id;
 *   if (kb_next_id(gen, &id) == KB_OK) ...
 *   kb_close(gen);
 *
 * Rules: every function returns a kb_status (KB_OK = 0) unless noted; on
 * error kb_last_error() has the detail (per thread, valid until that thread's
 * next kb_ call). All functions are thread-safe, except that kb_close() must
 * not race other calls on the same handle.
 *
 * Handle lifetime: kb_close() frees everything the generator holds (its Redis
 * connection, its lease) but not the handle itself, which stays valid as a
 * tombstone for the life of the process: every later call on it, kb_close()
 * included, returns KB_CLOSED and does nothing else. So a wrapper may call
 * kb_close() from a finalizer after the user already did, and a call after
 * close is an error, never a crash. A tombstone is a few dozen bytes; a
 * program that opens and closes handles in a loop keeps that much per handle.
 *
 * Leases: kb_open() does no network I/O: a
 * leased worker id is acquired at the first ID and confirmed again at each
 * kb_invocation_begin() and after 100 ms without IDs (a frozen Lambda being
 * thawed); when it cannot be confirmed, calls fail with KB_UNAVAILABLE rather
 * than risk a duplicate ID. After fork() the child's copy of a handle fails
 * with KB_FORKED: open a new one in the child. No C++ exception crosses this
 * interface. The library starts no thread and installs no signal handler.
 *
 * Redis outages: after a failed Redis round trip, calls that need Redis fail
 * with KB_UNAVAILABLE at once, with no network I/O, for a backoff window
 * (100 ms, doubling to 2 s, reset by a success); when it ends, one caller
 * tries Redis while the others keep failing fast rather than wait for it.
 * The same holds when the worker id range is exhausted (one scan of the
 * range per window).
 *
 * SIGPIPE: the library writes to Redis with send(MSG_NOSIGNAL), TLS
 * included, so a Redis that closed the connection is an error (the call
 * answers KB_UNAVAILABLE), never a SIGPIPE; the program need not ignore it.
 */
#ifndef KATSUBUSHI_H_
#define KATSUBUSHI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KATSUBUSHI_C_BUILD)
#define KB_EXPORT __attribute__((visibility("default")))
#else
#define KB_EXPORT
#endif

/* The ABI this header describes; kb_abi_version() returns the library's. */
#define KB_ABI_VERSION 1

typedef enum kb_status {
  KB_OK = 0,
  KB_INVALID_ARGUMENT = 1, /* a bad config, count or pointer */
  KB_UNAVAILABLE = 2,      /* no worker id confirmed now (Redis unreachable, none free,
                              lease lost, clock behind the last ID); retry later */
  KB_OUT_OF_RANGE = 3,     /* the clock is past what the ID layout can hold */
  KB_FORKED = 4,           /* the handle belongs to the parent process */
  KB_CLOSED = 5,           /* the handle was closed (see "Handle lifetime") */
  KB_INTERNAL = 6          /* a bug; see kb_last_error() */
} kb_status;

typedef struct kb_generator kb_generator;

/* Set struct_size (kb_config_init does) so that the library can grow this
 * struct: it reads only the fields an older caller knew about. */
typedef struct kb_config {
  size_t struct_size;
  uint32_t worker_id;      /* static worker id; 0 to lease one through redis_url */
  const char* redis_url;   /* redis://[user:pass@]host[:port][/db][?ns=NS]; also rediss:// (TLS),
                              rediscluster://h1:p1,h2:p2?ns=NS, redisclusters://,
                              redis-sentinel://h1:26379,h2:26379/db?ns=NS#primary, rediss-sentinel:// */
  uint32_t min_worker_id;  /* leased range; 0 = 1 */
  uint32_t max_worker_id;  /* 0 = the layout's largest (1023, or 63 with js_safe_id) */
  uint32_t lease_ttl_ms;   /* 0 = 60000 */
  int js_safe_id;          /* non-zero: 53-bit IDs (10 ms ticks, worker id 0..63) */
  /* Added after the first release; a caller built before them passes a
   * smaller struct_size and gets the defaults. TLS for a rediss:// URL, and
   * the replicas' acknowledgement of lease writes (README "Redis"). */
  const char* redis_tls_ca_file;    /* PEM CA bundle; NULL = the system's CA store */
  const char* redis_tls_cert_file;  /* client certificate chain (mutual TLS); NULL = none */
  const char* redis_tls_key_file;   /* its private key */
  int redis_tls_skip_verify;        /* non-zero: do not verify the server (insecure) */
  uint32_t redis_min_replicas;      /* lease writes need at least this many replicas (0) */
  int32_t redis_replica_timeout_ms; /* wait for replicas' acknowledgement; 0 = 500;
                                       negative = do not wait */
} kb_config;

typedef struct kb_id_parts {
  int64_t unix_millis; /* the ID's time (start of its tick) */
  uint32_t worker_id;
  uint32_t sequence;
} kb_id_parts;

KB_EXPORT void kb_config_init(kb_config* config);
KB_EXPORT kb_status kb_open(const kb_config* config, kb_generator** out);
KB_EXPORT kb_status kb_next_id(kb_generator* gen, uint64_t* out);
/* n consecutive IDs from one reservation; 1 <= n <= 4096. */
KB_EXPORT kb_status kb_next_ids(kb_generator* gen, uint64_t* out, size_t n);
/* The worker id IDs are issued under; KB_UNAVAILABLE while none is held. */
KB_EXPORT kb_status kb_worker_id(kb_generator* gen, uint32_t* out);
/* Splits an ID of this generator's layout; gen may be NULL for the default layout. */
KB_EXPORT kb_status kb_decode(const kb_generator* gen, uint64_t id, kb_id_parts* out);
KB_EXPORT kb_status kb_invocation_begin(kb_generator* gen);
/* Releases a leased worker id (compare-and-delete) and frees the generator;
 * the handle stays a tombstone (see "Handle lifetime"): later calls on it,
 * kb_close() too, return KB_CLOSED. kb_close(NULL) is KB_OK. */
KB_EXPORT kb_status kb_close(kb_generator* gen);
KB_EXPORT const char* kb_strerror(int status);
KB_EXPORT const char* kb_last_error(void);
KB_EXPORT uint32_t kb_abi_version(void);

/* ==========================================================================
 * Client of katsubushi servers (kb_client_*)
 *
 * IDs fetched over the network from a set of katsubushi servers (this
 * project's or go-katsubushi), with failover, so that Python, Node or Go
 * callers of this library get what go-katsubushi's Go client gives.
 * Independent of kb_generator above: no worker id, no Redis.
 *
 *   const char* servers[] = {"10.0.0.1:11212", "unix:/run/kb.sock", "http://10.0.0.2:8080/kb"};
 *   kb_client_config cc;
 *   kb_client_config_init(&cc);
 *   cc.servers = servers;
 *   cc.server_count = 3;
 *   kb_client* client;
 *   if (kb_client_open(&cc, &client) != KB_OK) fprintf(stderr, "%s\n", kb_last_error());
 *   uint64_t id;
 *   if (kb_client_fetch(client, &id) != KB_OK) fprintf(stderr, "%s\n", kb_last_error());
 *   kb_client_close(client);
 *
 * Servers: "host:port" or "[v6]:port" (memcached text protocol, the
 * default), "unix:/path" (the same over a unix socket), or
 * "http://host[:port][/prefix]" (GET <prefix>/id and <prefix>/ids?n=N);
 * over TLS, "tls://host:port" (memcached) and "https://host[:port][/prefix]".
 * A TLS server's certificate must chain to tls_ca_file (or the system's CA
 * store) and name the host dialled (or tls_server_name); a failure says
 * which in kb_last_error() ("server certificate not verified (unable to get
 * local issuer certificate)", "server certificate is not for the name
 * dialled", "the server does not speak TLS"). The handshake counts against
 * attempt_timeout like the rest of an attempt.
 *
 * Failover (the C++ katsubushi::Client in katsubushi/client/client.h states
 * it in full):
 *  1. Servers are tried in the order given, or from a random one onward
 *     with random_start.
 *  2. Up to two attempts per server (connect, one request, one reply). An
 *     attempt fails on a connect/send/receive error, a server closing early,
 *     an error reply (SERVER_ERROR, ERROR, HTTP status not 200) or a reply
 *     that is not exactly a katsubushi reply. The second attempt uses a new
 *     connection and is skipped when the first timed out.
 *  3. A server that failed is skipped by later calls for 100 ms, doubling to
 *     5 s; skipped servers are still tried after all others failed.
 *  4. Each call ends within timeout_ms. When every server failed: KB_UNAVAILABLE,
 *     and kb_last_error() lists each failed attempt with its server and reason.
 * Never a partial or invented ID: when no server gave IDs (KB_UNAVAILABLE),
 * all n slots of out are 0.
 * kb_client_open does no network I/O. Connections are reused across calls.
 * All functions are thread-safe, except that kb_client_close() must not race
 * other calls on the same handle. No C++ exception crosses this interface.
 */

typedef struct kb_client kb_client;

/* Set struct_size (kb_client_config_init does) so that the library can grow
 * this struct: it reads only the fields an older caller knew about. */
typedef struct kb_client_config {
  size_t struct_size;
  const char* const* servers;  /* server_count addresses, copied by kb_client_open */
  size_t server_count;
  uint32_t timeout_ms;          /* deadline of one call, all servers included; 0 = 5000 */
  uint32_t attempt_timeout_ms;  /* one attempt at one server; 0 = 1000 */
  int random_start;             /* non-zero: start each call at a random server */
  /* Added after the first release; a caller built before them passes a
   * smaller struct_size and gets the defaults. TLS for tls:// and https://
   * servers (the files are loaded by kb_client_open). */
  const char* tls_ca_file;      /* PEM CA bundle; NULL = the system's CA store */
  const char* tls_cert_file;    /* client certificate chain (mutual TLS); NULL = none */
  const char* tls_key_file;     /* its private key */
  const char* tls_server_name;  /* the name certificates must carry (and SNI); NULL = each server's host */
  int tls_skip_verify;          /* non-zero: do not verify servers (insecure) */
} kb_client_config;

KB_EXPORT void kb_client_config_init(kb_client_config* config);
/* KB_INVALID_ARGUMENT for no servers, an address that does not parse, or
 * TLS files that do not load. */
KB_EXPORT kb_status kb_client_open(const kb_client_config* config, kb_client** out);
/* One ID; KB_UNAVAILABLE when no server gave one within timeout_ms. */
KB_EXPORT kb_status kb_client_fetch(kb_client* client, uint64_t* out);
/* n IDs (1 <= n <= 1000), strictly increasing, in one request to one server. */
KB_EXPORT kb_status kb_client_fetch_multi(kb_client* client, uint64_t* out, size_t n);
/* Closes the connections and frees the handle; NULL is allowed. */
KB_EXPORT kb_status kb_client_close(kb_client* client);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* KATSUBUSHI_H_ */
