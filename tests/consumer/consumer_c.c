/* Uses the installed C ABI, as a C program would. */
#include <katsubushi.h>
#include <stdio.h>

int main(void) {
  kb_config config;
  kb_config_init(&config);
  config.worker_id = 5;
  kb_generator* gen = NULL;
  if (kb_open(&config, &gen) != KB_OK) return 1;
  uint64_t id = 0;
  if (kb_next_id(gen, &id) != KB_OK) return 2;
  kb_id_parts parts;
  if (kb_decode(gen, id, &parts) != KB_OK || parts.worker_id != 5) return 3;
  if (kb_abi_version() != KB_ABI_VERSION) return 4;
  if (kb_close(gen) != KB_OK) return 5;
  /* The client half: nothing listens on the port, so the fetch fails. */
  const char* servers[] = {"127.0.0.1:1"};
  kb_client_config cc;
  kb_client_config_init(&cc);
  cc.servers = servers;
  cc.server_count = 1;
  cc.timeout_ms = 500;
  kb_client* client = NULL;
  if (kb_client_open(&cc, &client) != KB_OK) return 6;
  if (kb_client_fetch(client, &id) != KB_UNAVAILABLE || id != 0) return 7;
  if (kb_client_close(client) != KB_OK) return 8;
  printf("c ok %llu\n", (unsigned long long)id);
  return 0;
}
