/* The C ABI from plain C: static worker id, batches, decode, argument and
 * config errors, struct_size, fork safety (the child's copy refuses), and
 * calls on a closed handle (KB_CLOSED, never a crash). */
#include <katsubushi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "c_check.h"

static void static_worker_id(void) {
  kb_config config;
  kb_config_init(&config);
  CHECK(config.struct_size == sizeof(kb_config));
  config.worker_id = 77;
  kb_generator* gen = NULL;
  CHECK(kb_open(&config, &gen) == KB_OK);
  uint32_t worker = 0;
  CHECK(kb_worker_id(gen, &worker) == KB_OK && worker == 77);

  uint64_t previous = 0;
  for (int i = 0; i < 100000; ++i) {
    uint64_t id = 0;
    CHECK(kb_next_id(gen, &id) == KB_OK);
    CHECK(id > previous);
    previous = id;
  }
  uint64_t batch[4096];
  CHECK(kb_next_ids(gen, batch, 4096) == KB_OK);
  CHECK(batch[0] > previous);
  for (int i = 1; i < 4096; ++i) CHECK(batch[i] == batch[i - 1] + 1 || batch[i] > batch[i - 1]);
  CHECK(kb_next_ids(gen, batch, 0) == KB_INVALID_ARGUMENT);
  CHECK(kb_next_ids(gen, batch, 4097) == KB_INVALID_ARGUMENT);
  CHECK(kb_next_id(gen, NULL) == KB_INVALID_ARGUMENT);
  CHECK(strlen(kb_last_error()) > 0);

  kb_id_parts parts;
  CHECK(kb_decode(gen, batch[0], &parts) == KB_OK);
  CHECK(parts.worker_id == 77);
  CHECK(parts.unix_millis > 1700000000000LL);
  /* go-katsubushi's documented example ID. */
  CHECK(kb_decode(NULL, 283890203179880448ULL, &parts) == KB_OK);
  CHECK(parts.unix_millis == 1487755098863LL && parts.worker_id == 1 && parts.sequence == 0);
  CHECK(kb_decode(NULL, (1ULL << 63), &parts) == KB_INVALID_ARGUMENT);
  CHECK(kb_invocation_begin(gen) == KB_OK); /* nothing to confirm for a static id */
  CHECK(kb_close(gen) == KB_OK);
}

static void config_errors(void) {
  kb_config config;
  kb_generator* gen = (kb_generator*)1;
  kb_config_init(&config);
  CHECK(kb_open(&config, &gen) == KB_INVALID_ARGUMENT); /* neither worker id nor Redis */
  CHECK(gen == NULL);
  config.worker_id = 1024;
  CHECK(kb_open(&config, &gen) == KB_INVALID_ARGUMENT);
  config.worker_id = 64;
  config.js_safe_id = 1;
  CHECK(kb_open(&config, &gen) == KB_INVALID_ARGUMENT);
  kb_config_init(&config);
  config.redis_url = "http://nope";
  CHECK(kb_open(&config, &gen) == KB_INVALID_ARGUMENT);
  CHECK(strstr(kb_last_error(), "scheme") != NULL);
  config.struct_size = 4; /* a caller that knows no fields at all */
  CHECK(kb_open(&config, &gen) == KB_INVALID_ARGUMENT);
  CHECK(kb_open(NULL, &gen) == KB_INVALID_ARGUMENT);
  CHECK(kb_close(NULL) == KB_OK);
  CHECK(strcmp(kb_strerror(KB_FORKED), "the process forked; open a new generator in the child") == 0);
  CHECK(kb_abi_version() == KB_ABI_VERSION);
}

/* An older caller's struct: only struct_size and worker_id. */
struct kb_config_v0 {
  size_t struct_size;
  uint32_t worker_id;
};

static void older_struct(void) {
  struct kb_config_v0 old = {sizeof(struct kb_config_v0), 9};
  kb_generator* gen = NULL;
  CHECK(kb_open((const kb_config*)&old, &gen) == KB_OK);
  uint32_t worker = 0;
  CHECK(kb_worker_id(gen, &worker) == KB_OK && worker == 9);
  kb_close(gen);
}

static void fork_safety(void) {
  kb_config config;
  kb_config_init(&config);
  config.worker_id = 12;
  kb_generator* gen = NULL;
  CHECK(kb_open(&config, &gen) == KB_OK);
  uint64_t id = 0;
  CHECK(kb_next_id(gen, &id) == KB_OK);
  pid_t child = fork();
  if (child == 0) {
    uint64_t child_id = 0;
    int status = kb_next_id(gen, &child_id);
    uint32_t worker = 0;
    int worker_status = kb_worker_id(gen, &worker);
    /* A new generator in the child is fine. */
    kb_generator* own = NULL;
    kb_config mine;
    kb_config_init(&mine);
    mine.worker_id = 13;
    int open_status = kb_open(&mine, &own);
    uint64_t own_id = 0;
    int own_status = open_status == KB_OK ? (int)kb_next_id(own, &own_id) : -1;
    _exit(status == KB_FORKED && worker_status == KB_FORKED && own_status == KB_OK ? 0 : 1);
  }
  int wstatus = 0;
  CHECK(waitpid(child, &wstatus, 0) == child);
  CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  /* The parent keeps issuing. */
  uint64_t after = 0;
  CHECK(kb_next_id(gen, &after) == KB_OK && after > id);
  kb_close(gen);
}

/* After kb_close the handle is a tombstone: every call says KB_CLOSED (a
 * wrapper's finalizer closing again included) and none touches freed memory
 * (the ASan build of this test would report it). */
static void closed_handle(void) {
  kb_config config;
  kb_config_init(&config);
  config.worker_id = 21;
  kb_generator* gen = NULL;
  CHECK(kb_open(&config, &gen) == KB_OK);
  uint64_t id = 0;
  CHECK(kb_next_id(gen, &id) == KB_OK);
  CHECK(kb_close(gen) == KB_OK);
  uint64_t ids[4];
  uint32_t worker = 0;
  kb_id_parts parts;
  CHECK(kb_next_id(gen, &id) == KB_CLOSED);
  CHECK(strstr(kb_last_error(), "closed") != NULL);
  CHECK(kb_next_ids(gen, ids, 4) == KB_CLOSED);
  CHECK(kb_worker_id(gen, &worker) == KB_CLOSED);
  CHECK(kb_invocation_begin(gen) == KB_CLOSED);
  CHECK(kb_decode(gen, id, &parts) == KB_CLOSED);
  CHECK(kb_close(gen) == KB_CLOSED);
  CHECK(kb_close(gen) == KB_CLOSED);
  CHECK(strcmp(kb_strerror(KB_CLOSED), "the generator is closed") == 0);
  /* A handle opened after it is a different one: the tombstone is never reused. */
  kb_generator* next = NULL;
  CHECK(kb_open(&config, &next) == KB_OK);
  CHECK(next != gen);
  CHECK(kb_next_id(gen, &id) == KB_CLOSED);
  CHECK(kb_next_id(next, &id) == KB_OK);
  CHECK(kb_close(next) == KB_OK);
}

/* The client's TLS fields: read when struct_size covers them, files loaded at
 * open (no network here), and a caller built before them gets the defaults. */
static void client_tls_fields(void) {
  const char* servers[] = {"tls://127.0.0.1:1", "https://127.0.0.1:1/kb"};
  kb_client_config cc;
  kb_client_config_init(&cc);
  CHECK(cc.struct_size == sizeof(kb_client_config));
  CHECK(cc.tls_ca_file == NULL && cc.tls_skip_verify == 0);
  cc.servers = servers;
  cc.server_count = 2;
  cc.tls_ca_file = "/nonexistent/ca.crt";
  kb_client* client = NULL;
  CHECK(kb_client_open(&cc, &client) == KB_INVALID_ARGUMENT);
  CHECK(client == NULL);
  CHECK(strstr(kb_last_error(), "TLS files did not load: cannot load the CA file /nonexistent/ca.crt") != NULL);
  cc.tls_ca_file = NULL;
  cc.tls_cert_file = "/nonexistent/client.crt"; /* without its key */
  CHECK(kb_client_open(&cc, &client) == KB_INVALID_ARGUMENT);
  CHECK(strstr(kb_last_error(), "needs both a certificate file and a key file") != NULL);
  /* The same struct as an older caller sees it: the fields past its end are not read. */
  cc.struct_size = offsetof(kb_client_config, tls_ca_file);
  CHECK(kb_client_open(&cc, &client) == KB_OK);
  CHECK(kb_client_close(client) == KB_OK);
}

int main(void) {
  static_worker_id();
  config_errors();
  older_struct();
  client_tls_fields();
  fork_safety();
  closed_handle();
  if (failures == 0) printf("c_abi_test: ok\n");
  return failures == 0 ? 0 : 1;
}
