/* The C API as a C program uses it: open, shape, next into its own buffer and into the loader's, state,
 * restore, stats, errors as codes plus messages; the values against what zarr-python reads, and damaged
 * stores refused with their codes. usage: c_api_test DIR (DIR/tiles.zarr and make_loader_fixture.py's files) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

/* expected.bin (make_loader_fixture.py): T, the times, rank 1's tile of every time step. */
static int64_t num_times, times_of[64];
static float* expected;

static int LoadExpected(const char* dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/expected.bin", dir);
  FILE* f = fopen(path, "rb");
  CHECK(f != NULL);
  CHECK(fread(&num_times, 8, 1, f) == 1 && num_times > 0 && num_times <= 64);
  CHECK(fread(times_of, 8, (size_t)num_times, f) == (size_t)num_times);
  long start = ftell(f);
  fseek(f, 0, SEEK_END);
  size_t n = (size_t)(ftell(f) - start);
  fseek(f, start, SEEK_SET);
  expected = malloc(n);
  CHECK(fread(expected, 1, n, f) == n);
  fclose(f);
  return 0;
}

/* Every sample of `batch` (shape [B, 2, C, H, W]): its input and target equal the tiles at its time and the
 * next, bit for bit. */
static int MatchesZarrPython(const float* batch, const int64_t* times, const int64_t* shape) {
  const size_t tile = (size_t)(shape[2] * shape[3] * shape[4]);
  for (int64_t b = 0; b < shape[0]; ++b) {
    int64_t t = -1;
    for (int64_t k = 0; k < num_times; ++k)
      if (times_of[k] == times[b]) t = k;
    CHECK(t >= 0 && t + 1 < num_times);
    CHECK(memcmp(batch + (b * 2) * tile, expected + t * tile, tile * 4) == 0);
    CHECK(memcmp(batch + (b * 2 + 1) * tile, expected + (t + 1) * tile, tile * 4) == 0);
  }
  return 0;
}

int main(int argc, char** argv) {
  CHECK(argc == 2);
  CHECK(LoadExpected(argv[1]) == 0);
  char store[4096], corrupt[4096], incomplete[4096], missing[4096];
  snprintf(store, sizeof store, "%s/tiles.zarr", argv[1]);
  snprintf(corrupt, sizeof corrupt, "%s/corrupt.zarr", argv[1]);
  snprintf(incomplete, sizeof incomplete, "%s/incomplete.zarr", argv[1]);
  snprintf(missing, sizeof missing, "%s/no-such.zarr", argv[1]);
  argv[1] = store;
  char* err = NULL;
  jigsaw_loader_options o;
  jigsaw_loader_options_init(NULL);  // never a crash, as the header promises
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
  /* The static fields of rank 1 (lsm and z at the surface, one channel group): as zarr-python reads them. */
  int64_t static_shape[3];
  jigsaw_loader_static_shape(l, static_shape);
  CHECK(static_shape[0] == 2 && static_shape[1] == shape[3] && static_shape[2] == shape[4]);
  {
    char path[4096];
    snprintf(path, sizeof path, "%s/../static_expected.bin", argv[1]);
    FILE* f = fopen(path, "rb");
    CHECK(f != NULL);
    const size_t n = (size_t)(static_shape[0] * static_shape[1] * static_shape[2]);
    float* want = malloc(n * 4);
    CHECK(fread(want, 4, n, f) == n);
    fclose(f);
    CHECK(jigsaw_loader_static_tile(l) != NULL && memcmp(jigsaw_loader_static_tile(l), want, n * 4) == 0);
    free(want);
  }
  float* mine = malloc(bytes);
  int64_t times[2];
  const void* data = NULL;
  CHECK(jigsaw_loader_next(l, mine, bytes, &data, times, &err) == 0);
  CHECK(data == mine);
  CHECK(MatchesZarrPython(mine, times, shape) == 0);
  int64_t no_members[2] = {0, 0}; /* a store without ensemble members */
  jigsaw_loader_batch_members(l, no_members);
  CHECK(no_members[0] == -1 && no_members[1] == -1);
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

  /* A missing store, an unfinished one, and a flipped byte met during next(): each its code, named. */
  jigsaw_loader* bad = NULL;
  CHECK(jigsaw_loader_open(missing, &o, &bad, &err) == JIGSAW_ENOTFOUND && strstr(err, "no-such.zarr"));
  jigsaw_free(err);
  err = NULL;
  int rc = jigsaw_loader_open(incomplete, &o, &bad, &err);
  CHECK(rc != 0 && strstr(err, "not complete"));
  jigsaw_free(err);
  err = NULL;
  CHECK(jigsaw_loader_open(corrupt, &o, &bad, &err) == 0);
  int failed = 0;
  for (int k = 0; k < 20 && !failed; ++k) { /* several epochs: every sample, time 2 among them */
    rc = jigsaw_loader_next(bad, mine, bytes, &data, times, &err);
    if (rc != 0) {
      CHECK(rc == JIGSAW_EDATALOSS);
      CHECK(strstr(err, "corrupt.zarr/data/c/2/0/0/1") != NULL);
      jigsaw_free(err);
      err = NULL;
      failed = 1;
    }
  }
  CHECK(failed);
  jigsaw_loader_close(bad);
  free(expected);
  free(mine);
  free(copy);
  printf("c api ok\n");
  return 0;
}
