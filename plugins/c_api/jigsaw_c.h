/* jigsaw C API.
 *
 * Conventions (as LevelDB's C API):
 * - Objects are opaque handles created by *_open and destroyed by *_close.
 * - Functions that can fail return 0 on success and a non-zero status code otherwise (JIGSAW_E* below); when
 *   `errptr` is not NULL it then receives a malloc'ed, NUL-terminated message that the caller frees with
 *   jigsaw_free().
 * - Every pointer argument is checked: a NULL handle or required pointer is JIGSAW_EINVAL, never a crash
 *   (getters given a NULL handle return 0, -1 or NULL).
 * - No C++ exception ever crosses this boundary.
 * - A loader handle is used by one thread at a time.
 */
#ifndef JIGSAW_C_H_
#define JIGSAW_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes (as jigsaw::StatusCode). */
enum {
  JIGSAW_OK = 0,
  JIGSAW_EINVAL = 1,         /* bad argument or input file: malformed metadata, bad flag, NULL pointer */
  JIGSAW_ENOTFOUND = 2,      /* a store, array, tensor or file that must exist does not */
  JIGSAW_EDATALOSS = 3,      /* stored bytes are corrupt: checksum mismatch, truncated or missing chunk */
  JIGSAW_EIO = 4,            /* the operating system or network failed */
  JIGSAW_EUNIMPLEMENTED = 5, /* valid input jigsaw does not support */
  JIGSAW_EPRECONDITION = 6,  /* the call does not fit the state (a save already committed, a store in the way) */
  JIGSAW_ERANGE = 7,         /* a byte range or box outside the object */
  JIGSAW_EINTERNAL = 8       /* a bug in jigsaw */
};

typedef struct jigsaw_loader jigsaw_loader;

typedef struct {
  int64_t rank;    /* model-parallel rank: which tile */
  int64_t dp_rank; /* data-parallel replica */
  int64_t dp_size;
  int64_t batch_size;
  int64_t lead_steps; /* targets at t + 1..lead_steps steps */
  int normalize;      /* (x - mean) / std with the store's statistics */
  const char* dtype;  /* "float32" or "bfloat16" (raw 16-bit words) */
  uint64_t seed;
  int shuffle;
  const char* start; /* time window, inclusive; NULL or "" for all */
  const char* end;
  int64_t prefetch; /* batches in flight */
  int threads;      /* pipeline worker threads, 0 for all cores */
} jigsaw_loader_options;

typedef struct {
  int64_t batches;
  int64_t bytes_read;
  int64_t bytes_decoded;
  int64_t bytes_delivered;
  double seconds;
  double consumer_wait_seconds;
  double read_amplification;
} jigsaw_loader_stats;

/* Fills `options` with the defaults (rank 0, one replica, batch 1, lead 1, float32, shuffled, seed 0). */
void jigsaw_loader_options_init(jigsaw_loader_options* options);

int jigsaw_loader_open(const char* url, const jigsaw_loader_options* options, jigsaw_loader** loader, char** errptr);

/* The batch shape [batch, 1 + lead_steps, channels, lat, lon] and its size in bytes. */
void jigsaw_loader_shape(const jigsaw_loader* loader, int64_t shape[5]);
size_t jigsaw_loader_batch_bytes(const jigsaw_loader* loader);
int64_t jigsaw_loader_batches_per_epoch(const jigsaw_loader* loader);

/* This rank's tile of the store's time-independent fields (jigsaw-shard --static): shape [static
 * channels, lat, lon] ({0, lat, lon} for a store without them) and the float32 values in C order, normalised
 * when the loader normalises; the pointer is the loader's, valid until it is closed (NULL when empty). */
void jigsaw_loader_static_shape(const jigsaw_loader* loader, int64_t shape[3]);
const float* jigsaw_loader_static_tile(const jigsaw_loader* loader);

/* The next batch. With `dst` (of `dst_bytes` >= batch bytes) the batch is copied there; without it
 * *data points into a loader-owned buffer valid until the next call on this loader. `times` (batch_size
 * entries, may be NULL) receives the input times in seconds since 1970. */
int jigsaw_loader_next(jigsaw_loader* loader, void* dst, size_t dst_bytes, const void** data, int64_t* times,
                       char** errptr);

/* The ensemble member of each sample (batch_size entries) of the batch the last jigsaw_loader_next returned,
 * for a store sharded with --members (every (time, member) pair a sample); -1 each for a store without
 * members, or before the first batch. */
void jigsaw_loader_batch_members(const jigsaw_loader* loader, int64_t* members);

/* The position of the next batch; restore continues exactly there. */
void jigsaw_loader_state(const jigsaw_loader* loader, int64_t* epoch, int64_t* batch);
int jigsaw_loader_restore(jigsaw_loader* loader, int64_t epoch, int64_t batch, char** errptr);
void jigsaw_loader_get_stats(const jigsaw_loader* loader, jigsaw_loader_stats* stats);

void jigsaw_loader_close(jigsaw_loader* loader);

/* Sharded checkpoints: list tensors and read any box. `path` is a checkpoint root (its LATEST step) or a
 * step directory. */
typedef struct jigsaw_checkpoint jigsaw_checkpoint;

int jigsaw_checkpoint_open(const char* path, jigsaw_checkpoint** checkpoint, char** errptr);
int64_t jigsaw_checkpoint_step(const jigsaw_checkpoint* checkpoint);
int64_t jigsaw_checkpoint_num_tensors(const jigsaw_checkpoint* checkpoint);
/* The metadata saved with the step (a JSON object, as text), valid while the handle lives. */
const char* jigsaw_checkpoint_metadata(const jigsaw_checkpoint* checkpoint);
/* Tensor `index`: name and dtype ("float32", ...) stay valid while the handle lives; up to 8 dimensions. */
int jigsaw_checkpoint_tensor(const jigsaw_checkpoint* checkpoint, int64_t index, const char** name, const char** dtype,
                             int* ndim, int64_t shape[8], char** errptr);
/* The box [origin, origin + shape) of tensor `name`, C order, into `dst` (at least dst_bytes). */
int jigsaw_checkpoint_read(const jigsaw_checkpoint* checkpoint, const char* name, const int64_t* origin,
                           const int64_t* shape, void* dst, size_t dst_bytes, char** errptr);
void jigsaw_checkpoint_close(jigsaw_checkpoint* checkpoint);
/* Saving a checkpoint: open a save, add every tensor, then commit (or start + wait, asynchronously).
 * `comm` NULL or "": this process saves every rank of `mesh`, and each tensor is given whole. "mpi": one
 * process per rank (MPI_COMM_WORLD, of mesh-size processes, initialised by the caller), each giving its own
 * tile of each tensor: every rank opens, adds the same tensors in the same order, and commits (or starts and
 * waits); commit, start and wait are collective and give every rank the same verdict, so a rank whose add
 * failed makes the commit fail everywhere, naming it, instead of leaving the others waiting. */
typedef struct jigsaw_checkpoint_save jigsaw_checkpoint_save;

int jigsaw_checkpoint_save_open(const char* root, int64_t step, const char* mesh, const char* comm,
                                jigsaw_checkpoint_save** save, char** errptr);
/* A tensor of global `shape` (ndim <= 8) and `dtype` ("float32", "bfloat16", ...), split as `partition`
 * (JSON, one mesh axis or null per dimension: "[\"domain\", null]"; NULL or "" for replicated). `data`, C
 * order: the whole tensor, or with "mpi" this rank's tile; `nbytes` must match it. The data are read at
 * commit/start and must stay valid until that returns. */
int jigsaw_checkpoint_save_add(jigsaw_checkpoint_save* save, const char* name, const char* dtype, int ndim,
                               const int64_t* shape, const char* partition, const void* data, size_t nbytes,
                               char** errptr);
/* JSON object stored in the manifest (optimiser, RNG, loader cursor, model config...). */
int jigsaw_checkpoint_save_set_metadata(jigsaw_checkpoint_save* save, const char* json, char** errptr);
/* Writes and commits: the step becomes LATEST, durable (fsync) before this returns. */
int jigsaw_checkpoint_save_commit(jigsaw_checkpoint_save* save, char** errptr);
/* Asynchronous: start returns once the tiles are copied (the caller may change its tensors); the files are
 * written in the background; wait commits and returns the save's verdict. */
int jigsaw_checkpoint_save_start(jigsaw_checkpoint_save* save, char** errptr);
int jigsaw_checkpoint_save_wait(jigsaw_checkpoint_save* save, char** errptr);
/* Frees the handle. A save never committed leaves nothing that counts: the next save removes its files. A
 * started save is waited for (and committed when saving alone; with "mpi" only wait commits). */
void jigsaw_checkpoint_save_close(jigsaw_checkpoint_save* save);

void jigsaw_free(void* p);

#ifdef __cplusplus
}
#endif

#endif /* JIGSAW_C_H_ */
