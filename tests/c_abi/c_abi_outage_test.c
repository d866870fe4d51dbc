/* The C ABI while Redis hangs (a SIGSTOPped redis-server, started here): after
 * the first failed call every kb_invocation_begin / kb_next_id fails at once
 * with no network I/O for the backoff window; when it ends one caller probes
 * Redis while the others keep failing fast (four threads never queue behind
 * it); once Redis is back the next probe succeeds.
 *
 * Timing is measured here, in C, around each call (a Python harness would
 * measure its own GIL). argv[1] may name the redis-server binary. */
#include <katsubushi.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "c_check.h"

/* The Redis command timeout of the embedded lease is 1 s; a call that waits
 * for Redis takes about that. A call that does not touch the network takes
 * microseconds; anything above kSlowMs counts as having waited for Redis (a
 * thread preempted on a loaded machine stays below it). */
static const double kFastMs = 1.0;
static const double kSlowMs = 300.0;
/* The 4-thread phase. */
enum { kThreads = 4 };
static const double kPhaseMs = 3000.0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr*)&addr, sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, (struct sockaddr*)&addr, &len);
  close(fd);
  return ntohs(addr.sin_port);
}

static pid_t start_redis(const char* binary, int port) {
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    execlp(binary, binary, "--port", port_text, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", (char*)NULL);
    _exit(127);
  }
  return pid;
}

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  kb_generator* gen;
  double phase_end;
  /* Calls that waited: [start, end) each. */
  double slow_start[64], slow_end[64];
  int slow;
  int calls, fast, unexpected_status;
  double max_fast_ms;
} worker_result;

static void* worker(void* arg) {
  worker_result* r = (worker_result*)arg;
  int i = 0;
  while (now_ms() < r->phase_end) {
    uint64_t id;
    double t0 = now_ms();
    kb_status s = (i++ % 2) ? kb_next_id(r->gen, &id) : kb_invocation_begin(r->gen);
    double t1 = now_ms();
    ++r->calls;
    if (s != KB_UNAVAILABLE) ++r->unexpected_status;
    usleep(200); /* a function does some work between IDs; and spare the CPU */
    if (t1 - t0 > kSlowMs) {
      if (r->slow < 64) {
        r->slow_start[r->slow] = t0;
        r->slow_end[r->slow] = t1;
      }
      ++r->slow;
    } else {
      if (t1 - t0 < kFastMs) ++r->fast;
      if (t1 - t0 > r->max_fast_ms) r->max_fast_ms = t1 - t0;
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  const char* redis_binary = argc > 1 ? argv[1] : "redis-server";
  const int port = free_port();
  const pid_t redis = start_redis(redis_binary, port);
  CHECK(redis > 0);
  char url[128];
  snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0?ns=outage", port);
  kb_config config;
  kb_config_init(&config);
  config.redis_url = url;
  config.min_worker_id = 1;
  config.max_worker_id = 8;
  kb_generator* gen = NULL;
  CHECK(kb_open(&config, &gen) == KB_OK);

  /* Wait for redis-server to answer: the first ID leases an id. */
  uint64_t id = 0;
  double give_up = now_ms() + 10000.0;
  while (kb_next_id(gen, &id) != KB_OK && now_ms() < give_up) usleep(50 * 1000);
  CHECK(id != 0);

  kill(redis, SIGSTOP);
  /* The first call waits for Redis once (its timeout) and fails. */
  double t0 = now_ms();
  CHECK(kb_invocation_begin(gen) == KB_UNAVAILABLE);
  double first_ms = now_ms() - t0;
  CHECK(first_ms < 1500.0);
  CHECK(strstr(kb_last_error(), "Redis") != NULL);

  /* Inside the window (100 ms): every call fails at once. */
  double lat[40];
  for (int i = 0; i < 40; ++i) {
    double s0 = now_ms();
    kb_status s = (i % 2) ? kb_next_id(gen, &id) : kb_invocation_begin(gen);
    lat[i] = now_ms() - s0;
    CHECK(s == KB_UNAVAILABLE);
  }
  qsort(lat, 40, sizeof(double), compare);
  printf("outage, one thread: first call %.1f ms; then median %.4f ms, max %.4f ms over 40 calls\n",
         first_ms, lat[20], lat[39]);
  CHECK(lat[20] < kFastMs);
  CHECK(lat[39] < kFastMs);

  /* Four threads for 3 s: one probe at a time when a window ends; everyone
   * else fails fast instead of queueing behind it. */
  worker_result results[kThreads];
  pthread_t threads[kThreads];
  memset(results, 0, sizeof(results));
  double phase_start = now_ms();
  for (int i = 0; i < kThreads; ++i) {
    results[i].gen = gen;
    results[i].phase_end = phase_start + kPhaseMs;
    pthread_create(&threads[i], NULL, worker, &results[i]);
  }
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  int calls = 0, fast = 0, slow = 0;
  double max_fast = 0;
  for (int i = 0; i < kThreads; ++i) {
    calls += results[i].calls;
    fast += results[i].fast;
    slow += results[i].slow;
    if (results[i].max_fast_ms > max_fast) max_fast = results[i].max_fast_ms;
    CHECK(results[i].unexpected_status == 0);
    CHECK(results[i].slow <= 64);
  }
  /* No two probes at once: no thread waited while another one did. */
  int overlaps = 0;
  for (int a = 0; a < kThreads; ++a) {
    for (int b = a + 1; b < kThreads; ++b) {
      for (int i = 0; i < results[a].slow && i < 64; ++i) {
        for (int j = 0; j < results[b].slow && j < 64; ++j) {
          if (results[a].slow_start[i] < results[b].slow_end[j] &&
              results[b].slow_start[j] < results[a].slow_end[i]) {
            ++overlaps;
          }
        }
      }
    }
  }
  double longest = 0;
  for (int a = 0; a < kThreads; ++a) {
    for (int i = 0; i < results[a].slow && i < 64; ++i) {
      if (results[a].slow_end[i] - results[a].slow_start[i] > longest) {
        longest = results[a].slow_end[i] - results[a].slow_start[i];
      }
    }
  }
  printf("outage, %d threads for %.0f ms: %d calls, %d under %.0f ms (the slowest of them %.3f ms), "
         "%d probes (longest %.0f ms), %d overlapping probes\n",
         kThreads, kPhaseMs, calls, fast, kFastMs, max_fast, slow, longest, overlaps);
  CHECK(overlaps == 0);
  /* Windows of 100, 200, 400, 800, 1600, 2000 ms with a ~1 s probe after each:
   * a handful of probes in 3 s, never one per call. */
  CHECK(slow >= 1 && slow <= 4);
  CHECK(longest < 1500.0);  /* one Redis timeout, never several queued */
  CHECK(calls - slow > 4000);
  CHECK(fast >= (calls - slow) * 99 / 100);

  /* Redis is back: within one more window (at most 2 s) a probe succeeds. */
  kill(redis, SIGCONT);
  give_up = now_ms() + 5000.0;
  kb_status s;
  while ((s = kb_next_id(gen, &id)) != KB_OK && now_ms() < give_up) usleep(5 * 1000);
  CHECK(s == KB_OK);
  /* And the window is over: a later failure starts from 100 ms again. */
  CHECK(kb_invocation_begin(gen) == KB_OK);

  CHECK(kb_close(gen) == KB_OK);
  kill(redis, SIGKILL);
  waitpid(redis, NULL, 0);
  if (failures == 0) printf("c_abi_outage_test: ok\n");
  return failures == 0 ? 0 : 1;
}
