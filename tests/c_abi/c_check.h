/* CHECK for the C ABI test programs: reports a failed condition with the
 * library's last error and counts it, so a program runs every check and then
 * exits with `failures != 0`. */
#ifndef KATSUBUSHI_TESTS_C_CHECK_H
#define KATSUBUSHI_TESTS_C_CHECK_H

#include <katsubushi.h>
#include <stdio.h>

static int failures = 0;
#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",      \
              __FILE__, __LINE__, #cond, kb_last_error());                \
      ++failures;                                                         \
    }                                                                     \
  } while (0)

#endif
