/* The C API on a store of ensemble members: every sample's (time, member) from jigsaw_loader_next and
 * jigsaw_loader_batch_members, its input and target tiles equal to zarr-python's at that time and member,
 * every pair met once in an epoch. usage: c_api_members_test DIR (DIR/ens.zarr, DIR/members.bin) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

int main(int argc, char** argv) {
  CHECK(argc == 2);
  char path[4096];
  snprintf(path, sizeof path, "%s/members.bin", argv[1]);
  FILE* f = fopen(path, "rb");
  CHECK(f != NULL);
  int64_t T = 0, M = 0;
  CHECK(fread(&T, 8, 1, f) == 1 && fread(&M, 8, 1, f) == 1 && T > 1 && T <= 64 && M > 1 && M <= 64);
  int64_t times_of[64], members_of[64];
  CHECK(fread(times_of, 8, (size_t)T, f) == (size_t)T && fread(members_of, 8, (size_t)M, f) == (size_t)M);
  long start = ftell(f);
  fseek(f, 0, SEEK_END);
  const size_t n = (size_t)(ftell(f) - start);
  fseek(f, start, SEEK_SET);
  float* expected = malloc(n);
  CHECK(fread(expected, 1, n, f) == n);
  fclose(f);

  snprintf(path, sizeof path, "%s/ens.zarr", argv[1]);
  jigsaw_loader_options o;
  jigsaw_loader_options_init(&o);
  o.rank = 0;
  o.batch_size = 3;
  o.seed = 7;
  jigsaw_loader* l = NULL;
  char* err = NULL;
  CHECK(jigsaw_loader_open(path, &o, &l, &err) == 0);
  int64_t shape[5];
  jigsaw_loader_shape(l, shape);
  const size_t tile = (size_t)(shape[2] * shape[3] * shape[4]);
  CHECK(tile * (size_t)(T * M) * 4 == n);
  int64_t members[3] = {0, 0, 0};
  jigsaw_loader_batch_members(l, members); /* before any batch */
  CHECK(members[0] == -1 && members[1] == -1 && members[2] == -1);
  const int64_t batches = jigsaw_loader_batches_per_epoch(l);
  CHECK(batches == (T - 1) * M / 3);
  int seen[64][64];
  memset(seen, 0, sizeof seen);
  for (int64_t b = 0; b < batches; ++b) {
    const void* data = NULL;
    int64_t times[3];
    CHECK(jigsaw_loader_next(l, NULL, 0, &data, times, &err) == 0);
    jigsaw_loader_batch_members(l, members);
    for (int s = 0; s < 3; ++s) {
      int64_t t = -1, m = -1;
      for (int64_t k = 0; k < T; ++k)
        if (times_of[k] == times[s]) t = k;
      for (int64_t k = 0; k < M; ++k)
        if (members_of[k] == members[s]) m = k;
      CHECK(t >= 0 && t + 1 < T && m >= 0);
      const float* got = (const float*)data + (size_t)(s * 2) * tile;
      CHECK(memcmp(got, expected + (size_t)(t * M + m) * tile, tile * 4) == 0);
      CHECK(memcmp(got + tile, expected + (size_t)((t + 1) * M + m) * tile, tile * 4) == 0); /* same member */
      seen[t][m] += 1;
    }
  }
  for (int64_t t = 0; t + 1 < T; ++t)
    for (int64_t m = 0; m < M; ++m) CHECK(seen[t][m] == 1);
  jigsaw_loader_close(l);
  free(expected);
  printf("PASS: %lld batches of (time, member) samples\n", (long long)batches);
  return 0;
}
