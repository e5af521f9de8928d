/* The C API as a C program uses it: open, shape, next into its own buffer and into the loader's, state,
 * restore, stats, errors as codes plus messages. usage: c_api_test STORE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

int main(int argc, char** argv) {
  CHECK(argc == 2);
  char* err = NULL;
  jigsaw_loader_options o;
  jigsaw_loader_options_init(&o);
  o.rank = 99;
  jigsaw_loader* l = NULL;
  CHECK(jigsaw_loader_open(argv[1], &o, &l, &err) != 0);
  CHECK(err != NULL && strstr(err, "rank 99") != NULL);
  jigsaw_free(err);
  err = NULL;

  o.rank = 1;
  o.batch_size = 2;
  o.seed = 5;
  CHECK(jigsaw_loader_open(argv[1], &o, &l, &err) == 0);
  int64_t shape[5];
  jigsaw_loader_shape(l, shape);
  CHECK(shape[0] == 2 && shape[1] == 2);
  size_t bytes = jigsaw_loader_batch_bytes(l);
  CHECK(bytes == (size_t)(shape[0] * shape[1] * shape[2] * shape[3] * shape[4] * 4));
  float* mine = malloc(bytes);
  int64_t times[2];
  const void* data = NULL;
  CHECK(jigsaw_loader_next(l, mine, bytes, &data, times, &err) == 0);
  CHECK(data == mine);
  int64_t epoch, batch;
  jigsaw_loader_state(l, &epoch, &batch);
  CHECK(epoch == 0 && batch == 1);
  /* The second batch, then rewind and read it again: identical. */
  const void* owned = NULL;
  int64_t t2[2];
  CHECK(jigsaw_loader_next(l, NULL, 0, &owned, t2, &err) == 0);
  float* copy = malloc(bytes);
  memcpy(copy, owned, bytes);
  CHECK(jigsaw_loader_restore(l, 0, 1, &err) == 0);
  int64_t t3[2];
  CHECK(jigsaw_loader_next(l, NULL, 0, &owned, t3, &err) == 0);
  CHECK(memcmp(copy, owned, bytes) == 0 && t3[0] == t2[0] && t3[1] == t2[1]);
  CHECK(jigsaw_loader_next(l, mine, 8, &data, NULL, &err) != 0);  /* destination too small */
  CHECK(err != NULL && strstr(err, "destination") != NULL);
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_loader_restore(l, 0, 1000, &err) != 0);
  jigsaw_free(err);
  jigsaw_loader_stats s;
  jigsaw_loader_get_stats(l, &s);
  CHECK(s.batches == 3);
  CHECK(s.bytes_read > 0);
  CHECK(s.read_amplification >= 1.0);
  jigsaw_loader_close(l);
  free(mine);
  free(copy);
  printf("c api ok\n");
  return 0;
}
