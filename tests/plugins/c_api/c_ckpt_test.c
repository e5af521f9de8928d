/* The checkpoint C API from C: list tensors, read whole tensors and boxes across tiles, errors as codes plus
 * messages. The checkpoint holds known values written without jigsaw (make_ckpt_fixture.py: a safetensors
 * file imported on a 2x2 mesh): w[i][j] = i * 1000 + j, float32 [40, 1024]; b[j] = -j, float64 [1024].
 * usage: c_ckpt_test CHECKPOINT_ROOT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

int main(int argc, char** argv) {
  CHECK(argc == 2);
  char* err = NULL;
  jigsaw_checkpoint* c = NULL;
  CHECK(jigsaw_checkpoint_open("/nonexistent/ckpt", &c, &err) == JIGSAW_ENOTFOUND && err && strstr(err, "LATEST"));
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_checkpoint_open(argv[1], &c, &err) == 0);
  CHECK(jigsaw_checkpoint_step(c) == 7);
  CHECK(jigsaw_checkpoint_num_tensors(c) == 2);
  /* Both tensors, by name, with their global shapes and dtypes. */
  int seen = 0;
  for (int64_t t = 0; t < 2; ++t) {
    const char* name = NULL;
    const char* dtype = NULL;
    int ndim = 0;
    int64_t shape[8];
    CHECK(jigsaw_checkpoint_tensor(c, t, &name, &dtype, &ndim, shape, &err) == 0);
    if (strcmp(name, "w") == 0) {
      CHECK(strcmp(dtype, "float32") == 0 && ndim == 2 && shape[0] == 40 && shape[1] == 1024);
      seen |= 1;
    } else {
      CHECK(strcmp(name, "b") == 0 && strcmp(dtype, "float64") == 0 && ndim == 1 && shape[0] == 1024);
      seen |= 2;
    }
  }
  CHECK(seen == 3);
  /* Whole w: every element its known value. */
  int64_t origin[2] = {0, 0}, whole[2] = {40, 1024};
  float* all = malloc(40 * 1024 * sizeof(float));
  CHECK(jigsaw_checkpoint_read(c, "w", origin, whole, all, 40 * 1024 * sizeof(float), &err) == 0);
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 1024; ++j) CHECK(all[i * 1024 + j] == (float)(i * 1000 + j));
  /* A box across all four tiles of the 2x2 mesh (rows 17..22, columns 500..547). */
  int64_t bo[2] = {17, 500}, bs[2] = {6, 48};
  float box[6 * 48];
  CHECK(jigsaw_checkpoint_read(c, "w", bo, bs, box, sizeof box, &err) == 0);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 48; ++j) CHECK(box[i * 48 + j] == (float)((17 + i) * 1000 + 500 + j));
  /* b, split over the tensor axis only, across its two halves. */
  int64_t b0[1] = {510}, bn[1] = {4};
  double bv[4];
  CHECK(jigsaw_checkpoint_read(c, "b", b0, bn, bv, sizeof bv, &err) == 0);
  for (int j = 0; j < 4; ++j) CHECK(bv[j] == -(double)(510 + j));
  /* Errors: codes and messages naming what is wrong. */
  int64_t far[2] = {40, 0};
  CHECK(jigsaw_checkpoint_read(c, "w", far, bs, box, sizeof box, &err) == JIGSAW_ERANGE && strstr(err, "is not within tensor"));
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_checkpoint_read(c, "nope", origin, bs, box, sizeof box, &err) == JIGSAW_ENOTFOUND && strstr(err, "nope"));
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_checkpoint_read(c, "w", bo, bs, box, sizeof box - 4, &err) != 0 && err);  /* buffer too small */
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_checkpoint_tensor(c, 99, NULL, NULL, NULL, NULL, &err) == JIGSAW_ERANGE);
  jigsaw_free(err);
  free(all);
  jigsaw_checkpoint_close(c);
  printf("checkpoint c api ok\n");
  return 0;
}
