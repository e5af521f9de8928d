/* CHECK(cond) for the C API tests: report the failed condition and leave main() with 1. */
#ifndef JIGSAW_TESTS_PLUGINS_CHECK_H_
#define JIGSAW_TESTS_PLUGINS_CHECK_H_

#include <stdio.h>

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                 \
    }                                                                           \
  } while (0)

#endif /* JIGSAW_TESTS_PLUGINS_CHECK_H_ */
