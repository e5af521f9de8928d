/* Saving checkpoints through the C API from one process (every rank's tiles cut from whole tensors):
 * blocking and asynchronous saves read back equal, metadata kept, bad arguments refused by name.
 * usage: c_ckpt_save_test EMPTY_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

/* Expects `call` to fail with a message containing `needle`. */
#define CHECK_FAILS(call, needle)                                                        \
  do {                                                                                   \
    char* e_ = NULL;                                                                     \
    char** err_ = &e_;                                                                   \
    (void)err_;                                                                          \
    int rc_ = (call);                                                                    \
    if (rc_ == 0 || !e_ || !strstr(e_, needle)) {                                        \
      fprintf(stderr, "%s:%d: expected failure with \"%s\", got %d: %s\n", __FILE__, __LINE__, \
              needle, rc_, e_ ? e_ : "(no message)");                                    \
      return 1;                                                                          \
    }                                                                                    \
    jigsaw_free(e_);                                                                     \
  } while (0)

static float w[6][10], e[5][3];
static int64_t b[7];

/* Reads tensor `name` whole from `path` into `dst` and compares it with `want`. */
static int ReadsBack(const char* path, const char* name, const void* want, size_t nbytes) {
  char* err = NULL;
  jigsaw_checkpoint* c = NULL;
  CHECK(jigsaw_checkpoint_open(path, &c, &err) == 0);
  int64_t origin[8] = {0}, shape[8];
  const char* n = NULL;
  int ndim = 0, found = 0;
  for (int64_t i = 0; i < jigsaw_checkpoint_num_tensors(c); ++i) {
    CHECK(jigsaw_checkpoint_tensor(c, i, &n, NULL, &ndim, shape, &err) == 0);
    if (strcmp(n, name) == 0) {
      found = 1;
      break;
    }
  }
  CHECK(found);
  void* got = malloc(nbytes);
  CHECK(jigsaw_checkpoint_read(c, name, origin, shape, got, nbytes, &err) == 0);
  CHECK(memcmp(got, want, nbytes) == 0);
  free(got);
  jigsaw_checkpoint_close(c);
  return 0;
}

/* Hostile calls on a checkpoint: NULL pointers and boxes whose ends overflow int64 are refused with the
 * documented code, never a crash or other memory (issue 16; run under ASan + UBSan too). */
static int RefusesHostileReads(const char* path, const char* name, int ndim) {
  char* err = NULL;
  jigsaw_checkpoint* c = NULL;
  CHECK(jigsaw_checkpoint_open(path, &c, &err) == 0);
  int64_t origin[8] = {0}, shape[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  float dst[64];
  CHECK(jigsaw_checkpoint_read(c, name, NULL, NULL, dst, sizeof dst, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_checkpoint_read(NULL, name, origin, shape, dst, sizeof dst, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_checkpoint_read(c, NULL, origin, shape, dst, sizeof dst, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_checkpoint_read(c, "no such tensor", origin, shape, dst, sizeof dst, NULL) == JIGSAW_ENOTFOUND);
  origin[0] = INT64_MAX; /* origin + shape wraps round to a negative number */
  shape[0] = 2;
  CHECK_FAILS(jigsaw_checkpoint_read(c, name, origin, shape, dst, sizeof dst, err_), "is not within tensor");
  CHECK(jigsaw_checkpoint_read(c, name, origin, shape, dst, sizeof dst, NULL) == JIGSAW_ERANGE);
  origin[0] = 0;
  shape[0] = INT64_MAX;
  CHECK(jigsaw_checkpoint_read(c, name, origin, shape, dst, sizeof dst, NULL) == JIGSAW_ERANGE);
  CHECK(jigsaw_checkpoint_tensor(NULL, 0, NULL, NULL, NULL, NULL, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_checkpoint_tensor(c, jigsaw_checkpoint_num_tensors(c), NULL, NULL, NULL, NULL, NULL) == JIGSAW_ERANGE);
  CHECK(jigsaw_checkpoint_num_tensors(NULL) == 0 && jigsaw_checkpoint_step(NULL) == -1);
  CHECK(jigsaw_checkpoint_metadata(NULL) == NULL);
  CHECK(jigsaw_checkpoint_open(NULL, &c, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_checkpoint_save_commit(NULL, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_loader_next(NULL, NULL, 0, NULL, NULL, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_loader_restore(NULL, 0, 0, NULL) == JIGSAW_EINVAL);
  CHECK(jigsaw_loader_batch_bytes(NULL) == 0);
  (void)ndim;
  jigsaw_checkpoint_close(c);
  return 0;
}

int main(int argc, char** argv) {
  CHECK(argc == 2);
  const char* root = argv[1];
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 10; ++j) w[i][j] = (float)(i * 100 + j);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) e[i][j] = (float)(-i * 10 - j);
  for (int i = 0; i < 7; ++i) b[i] = (int64_t)1 << (40 + i);
  const int64_t ws[2] = {6, 10}, es[2] = {5, 3}, bs[1] = {7};
  char* err = NULL;
  jigsaw_checkpoint_save* s = NULL;

  /* Bad arguments, each naming what is wrong; a save with a failed add never commits. */
  CHECK_FAILS(jigsaw_checkpoint_save_open(root, 1, "domain=x", NULL, &s, err_), "domain=x");
  CHECK_FAILS(jigsaw_checkpoint_save_open(root, 1, "domain=2", "nccl", &s, err_), "nccl");
  CHECK(jigsaw_checkpoint_save_open(root, 1, "domain=2,tensor=2", NULL, &s, &err) == 0);
  CHECK_FAILS(jigsaw_checkpoint_save_add(s, "w", "float33", 2, ws, NULL, w, sizeof w, err_), "float33");
  CHECK_FAILS(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, "[\"domain\", \"pipe\"]", w, sizeof w, err_), "pipe");
  CHECK_FAILS(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, "[\"domain\"", w, sizeof w, err_), "partition of tensor w");
  CHECK_FAILS(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, NULL, w, sizeof w - 4, err_), "236 bytes given");
  CHECK(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, NULL, w, sizeof w, &err) == 0);
  CHECK_FAILS(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, NULL, w, sizeof w, err_), "already added");
  CHECK_FAILS(jigsaw_checkpoint_save_set_metadata(s, "[1]", err_), "not a JSON object");
  CHECK_FAILS(jigsaw_checkpoint_save_commit(s, err_), "float33");
  CHECK_FAILS(jigsaw_checkpoint_save_commit(s, err_), "already committed or started");
  CHECK_FAILS(jigsaw_checkpoint_save_wait(s, err_), "no save was started");
  jigsaw_checkpoint_save_close(s);
  CHECK_FAILS(jigsaw_checkpoint_open(root, NULL, err_), "NULL");
  /* The import's rules on every save path: a name that is no store key, a negative extent. */
  {
    const int64_t neg[2] = {-2, -2};
    CHECK(jigsaw_checkpoint_save_open(root, 1, "domain=1", NULL, &s, &err) == 0);
    if (jigsaw_checkpoint_save_add(s, "w", "float32", 2, neg, NULL, w, 0, &err) == 0) {
      CHECK_FAILS(jigsaw_checkpoint_save_commit(s, err_), "impossible shape");
    } else {
      free(err);
      err = NULL;
    }
    jigsaw_checkpoint_save_close(s);
    CHECK(jigsaw_checkpoint_save_open(root, 1, "domain=1", NULL, &s, &err) == 0);
    if (jigsaw_checkpoint_save_add(s, "../../x", "float32", 2, ws, NULL, w, sizeof w, &err) == 0) {
      CHECK_FAILS(jigsaw_checkpoint_save_commit(s, err_), "cannot be a tensor's name");
    } else {
      free(err);
      err = NULL;
    }
    jigsaw_checkpoint_save_close(s);
  }

  /* A blocking save: a tensor split both ways, an uneven one, a replicated one, metadata. */
  CHECK(jigsaw_checkpoint_save_open(root, 1, "domain=2,tensor=2", "", &s, &err) == 0);
  CHECK(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, "[\"domain\", \"tensor\"]", w, sizeof w, &err) == 0);
  CHECK(jigsaw_checkpoint_save_add(s, "layer/e", "float32", 2, es, "[\"tensor\", null]", e, sizeof e, &err) == 0);
  CHECK(jigsaw_checkpoint_save_add(s, "b", "int64", 1, bs, NULL, b, sizeof b, &err) == 0);
  CHECK(jigsaw_checkpoint_save_set_metadata(s, "{\"lr\": 0.001, \"cursor\": [3, 17]}", &err) == 0);
  CHECK(jigsaw_checkpoint_save_commit(s, &err) == 0);
  CHECK_FAILS(jigsaw_checkpoint_save_add(s, "x", "float32", 2, ws, NULL, w, sizeof w, err_), "already committed");
  jigsaw_checkpoint_save_close(s);
  CHECK(ReadsBack(root, "w", w, sizeof w) == 0);
  CHECK(RefusesHostileReads(root, "w", 2) == 0);
  CHECK(ReadsBack(root, "layer/e", e, sizeof e) == 0);
  CHECK(ReadsBack(root, "b", b, sizeof b) == 0);
  jigsaw_checkpoint* c = NULL;
  CHECK(jigsaw_checkpoint_open(root, &c, &err) == 0);
  CHECK(jigsaw_checkpoint_step(c) == 1);
  CHECK(strstr(jigsaw_checkpoint_metadata(c), "\"cursor\":[3,17]") != NULL);
  jigsaw_checkpoint_close(c);

  /* The same step again is refused; nothing of the first is lost. */
  CHECK(jigsaw_checkpoint_save_open(root, 1, "domain=2,tensor=2", NULL, &s, &err) == 0);
  CHECK(jigsaw_checkpoint_save_add(s, "b", "int64", 1, bs, NULL, b, sizeof b, &err) == 0);
  CHECK_FAILS(jigsaw_checkpoint_save_commit(s, err_), "already committed");
  jigsaw_checkpoint_save_close(s);
  CHECK(ReadsBack(root, "w", w, sizeof w) == 0);

  /* Asynchronous: the tensors may change as soon as start returns; step 2 holds them as they were. */
  float w2[6][10];
  memcpy(w2, w, sizeof w);
  CHECK(jigsaw_checkpoint_save_open(root, 2, "domain=2,tensor=2", NULL, &s, &err) == 0);
  CHECK(jigsaw_checkpoint_save_add(s, "w", "float32", 2, ws, "[\"domain\", \"tensor\"]", w, sizeof w, &err) == 0);
  CHECK(jigsaw_checkpoint_save_start(s, &err) == 0);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 10; ++j) w[i][j] = -1.0f;
  CHECK(jigsaw_checkpoint_save_wait(s, &err) == 0);
  jigsaw_checkpoint_save_close(s);
  CHECK(jigsaw_checkpoint_open(root, &c, &err) == 0);
  CHECK(jigsaw_checkpoint_step(c) == 2);
  jigsaw_checkpoint_close(c);
  CHECK(ReadsBack(root, "w", w2, sizeof w2) == 0);

  /* A started save closed without wait is committed (this process saves alone). */
  CHECK(jigsaw_checkpoint_save_open(root, 3, "domain=2,tensor=2", NULL, &s, &err) == 0);
  CHECK(jigsaw_checkpoint_save_add(s, "b", "int64", 1, bs, NULL, b, sizeof b, &err) == 0);
  CHECK(jigsaw_checkpoint_save_start(s, &err) == 0);
  jigsaw_checkpoint_save_close(s);
  CHECK(jigsaw_checkpoint_open(root, &c, &err) == 0);
  CHECK(jigsaw_checkpoint_step(c) == 3);
  jigsaw_checkpoint_close(c);
  printf("checkpoint c api save ok\n");
  return 0;
}
