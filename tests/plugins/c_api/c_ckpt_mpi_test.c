/* Collective checkpoint saves through the C API, one MPI process per rank, each giving only its own tiles:
 * a rank with a bad argument fails the save on every rank (no rank waits forever), blocking and
 * asynchronous saves read back whole and equal on every rank.
 * usage: mpirun -np 4 c_ckpt_mpi_test EMPTY_DIR */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/c_api/jigsaw_c.h"
#include "tests/plugins/c_api/check.h"

enum { kRows = 9, kCols = 8 }; /* split over domain=2 (5 + 4 rows) and tensor=2 (4 + 4 columns) */

static float Value(int step, int i, int j) { return (float)(step * 10000 + i * 100 + j); }

/* This rank's tile of w at `step`: rows [r0, r0 + nr), columns [c0, c0 + nc). */
static void Tile(int rank, int step, float* tile, int* nr, int* nc) {
  const int domain = rank / 2, tensor = rank % 2;
  const int r0 = domain * 5, c0 = tensor * 4;
  *nr = domain == 0 ? 5 : 4;
  *nc = 4;
  for (int i = 0; i < *nr; ++i)
    for (int j = 0; j < *nc; ++j) tile[i * *nc + j] = Value(step, r0 + i, c0 + j);
}

static int Save(const char* root, int rank, int step, int async, size_t bad_bytes_on_rank2, char** err) {
  float tile[5 * 4];
  int nr, nc;
  Tile(rank, step, tile, &nr, &nc);
  const int64_t shape[2] = {kRows, kCols};
  jigsaw_checkpoint_save* s = NULL;
  int rc = jigsaw_checkpoint_save_open(root, step, "domain=2,tensor=2", "mpi", &s, err);
  if (rc) return rc;
  size_t nbytes = (size_t)(nr * nc) * sizeof(float);
  if (rank == 2 && bad_bytes_on_rank2) nbytes = bad_bytes_on_rank2;
  char* add_err = NULL;
  (void)jigsaw_checkpoint_save_add(s, "w", "float32", 2, shape, "[\"domain\", \"tensor\"]", tile, nbytes, &add_err);
  jigsaw_free(add_err); /* the failure comes back from commit, on every rank */
  if (async) {
    rc = jigsaw_checkpoint_save_start(s, err);
    memset(tile, 0, sizeof tile); /* copied by start */
    if (!rc) rc = jigsaw_checkpoint_save_wait(s, err);
  } else {
    rc = jigsaw_checkpoint_save_commit(s, err);
  }
  jigsaw_checkpoint_save_close(s);
  return rc;
}

static int ReadsBack(const char* root, int step) {
  char* err = NULL;
  jigsaw_checkpoint* c = NULL;
  CHECK(jigsaw_checkpoint_open(root, &c, &err) == 0);
  CHECK(jigsaw_checkpoint_step(c) == step);
  float all[kRows * kCols];
  const int64_t origin[2] = {0, 0}, shape[2] = {kRows, kCols};
  CHECK(jigsaw_checkpoint_read(c, "w", origin, shape, all, sizeof all, &err) == 0);
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kCols; ++j) CHECK(all[i * kCols + j] == Value(step, i, j));
  jigsaw_checkpoint_close(c);
  return 0;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK(argc == 2 && size == 4);
  const char* root = argv[1];
  char* err = NULL;

  /* A mesh of another size than the job is refused by every rank at open. */
  jigsaw_checkpoint_save* s = NULL;
  CHECK(jigsaw_checkpoint_save_open(root, 1, "domain=2", "mpi", &s, &err) != 0);
  CHECK(err && strstr(err, "mesh domain=2 has 2 ranks but 4 MPI processes save it"));
  jigsaw_free(err);
  err = NULL;

  /* Rank 2 gives the wrong byte count: every rank's commit fails, naming rank 2 and the tensor. */
  CHECK(Save(root, rank, 1, 0, 12, &err) != 0);
  CHECK(err && strstr(err, "tensor w: 12 bytes given"));
  if (rank != 2) CHECK(strstr(err, "rank 2: ") != NULL);
  jigsaw_free(err);
  err = NULL;

  CHECK(Save(root, rank, 1, 0, 0, &err) == 0);
  CHECK(ReadsBack(root, 1) == 0);
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK(Save(root, rank, 2, 1, 0, &err) == 0);
  CHECK(ReadsBack(root, 2) == 0);
  if (rank == 0) printf("checkpoint c api mpi save ok\n");
  MPI_Finalize();
  return 0;
}
