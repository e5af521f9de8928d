/* The checkpoint C API from C: list tensors, read whole tensors and boxes, errors as codes plus messages.
 * usage: c_ckpt_test CHECKPOINT_ROOT (written by `jigsaw-bench ckpt`) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

int main(int argc, char** argv) {
  CHECK(argc == 2);
  char* err = NULL;
  jigsaw_checkpoint* c = NULL;
  CHECK(jigsaw_checkpoint_open("/nonexistent/ckpt", &c, &err) != 0 && err && strstr(err, "LATEST"));
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_checkpoint_open(argv[1], &c, &err) == 0);
  CHECK(jigsaw_checkpoint_step(c) == 1);
  CHECK(jigsaw_checkpoint_num_tensors(c) == 16);
  const char* name = NULL;
  const char* dtype = NULL;
  int ndim = 0;
  int64_t shape[8];
  CHECK(jigsaw_checkpoint_tensor(c, 3, &name, &dtype, &ndim, shape, &err) == 0);
  CHECK(strcmp(dtype, "float32") == 0 && ndim == 2 && shape[1] == 1024);
  size_t bytes = (size_t)(shape[0] * shape[1] * 4);
  float* all = malloc(bytes);
  int64_t origin[2] = {0, 0};
  CHECK(jigsaw_checkpoint_read(c, name, origin, shape, all, bytes, &err) == 0);
  /* A box across the tiles of the 2x2 mesh equals the same box of the whole tensor. */
  int64_t bo[2] = {shape[0] / 2 - 3, 500}, bs[2] = {6, 48};
  float box[6 * 48];
  CHECK(jigsaw_checkpoint_read(c, name, bo, bs, box, sizeof box, &err) == 0);
  for (int i = 0; i < 6; ++i)
    /* bitwise: the benchmark data are random bits, NaNs included */
    CHECK(memcmp(&box[i * 48], &all[(bo[0] + i) * shape[1] + bo[1]], 48 * sizeof(float)) == 0);
  int64_t far[2] = {shape[0], 0};
  CHECK(jigsaw_checkpoint_read(c, name, far, bs, box, sizeof box, &err) != 0 && strstr(err, "is not within tensor"));
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_checkpoint_read(c, "nope", origin, bs, box, sizeof box, &err) != 0 && strstr(err, "nope"));
  jigsaw_free(err);
  CHECK(jigsaw_checkpoint_tensor(c, 99, &name, &dtype, &ndim, shape, &err) != 0);
  jigsaw_free(err);
  free(all);
  jigsaw_checkpoint_close(c);
  printf("checkpoint c api ok\n");
  return 0;
}
