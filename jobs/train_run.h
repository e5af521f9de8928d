// The body of jigsaw-train: WeatherMixer trained on a jigsaw-shard store with Jigsaw parallelism, fed by
// the prefetch loader, with asynchronous sharded checkpoints, resume on any mesh and store tiling of the same
// data (a model's parameters have one layout whatever mesh wrote them: docs/models.md), validation against
// persistence, and a clean stop (checkpoint, exit 0) on SIGTERM / SIGINT. Before any step it refuses what
// would lose work: a root holding another run's steps without --resume, a damaged LATEST, a second trainer
// on the root, windows without samples; a non-finite loss stops the run with LATEST at the last good step.
//
// Collective: every rank of `world` calls RunTraining with the same options. World size = replicas x s^2
// for the mesh domain=s,tensor=s, which must match the store's tile grid (LAT x LON = s, CH = s).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "parallel/communicator.h"

namespace jigsaw::train {

struct TrainRunOptions {
  std::string data;  // the store (any URL the loader reads)
  std::string mesh = "domain=1,tensor=1";
  std::string config;                                      // model.json
  std::string train_start, train_end, val_start, val_end;  // inclusive windows; empty: the whole store
  int64_t steps = 100;
  int64_t stop_at = 0;        // stop after this many steps as a preemption would (checkpoint, return); 0: run on
  int64_t batch_size = 1;     // per replica
  int64_t micro_batch = 0;    // samples through the model at once (0: WeatherMixer::SamplesAtOnce's choice)
  int64_t rollout_steps = 1;  // K: the loss of K autoregressive applications, back-propagated through all
  std::string ckpt;           // checkpoint root (empty: none)
  int64_t ckpt_every = 0;     // steps between saves (0: only at the end)
  bool resume = false;        // continue from ckpt's LATEST
  int64_t val_every = 0;      // steps between validations (0: about 10 in the run); needs val_start/val_end
  int64_t val_batches = 0;    // batches per validation (0: one pass over the window)
  std::string log;            // JSON lines, one per step and per validation (rank 0)
  std::string tensorboard;    // a folder for TensorBoard event files, the same records as scalars (rank 0)
  std::string backend = "cpu";
  int threads = 0;  // BLAS threads (0: the library's default)
  int64_t prefetch = 4;
  bool progress = false;  // a progress line on stderr, redrawn (rank 0, on a terminal)
  // Without `progress`: a line on `out` this often (rank 0), so that mpirun and batch logs show the run.
  double print_every_s = 10;
  // Measure the backend's GEMM rate at this rank's own product shapes before the first step (the ceiling
  // each step's GEMM FLOP rate is shown against, as `jigsaw-bench gemm` measures it).
  bool gemm_ceiling = true;
  // Recompute each block's activations in the backward instead of keeping them (WeatherMixer::SetRecompute).
  bool recompute = false;
  // Move the next Jigsaw step's operands while this one multiplies (BlockMatmul::set_overlap); off only to
  // measure what overlap gains.
  bool overlap = true;
};

struct TrainRunReport {
  int64_t first_step = 0, last_step = 0;  // steps run: [first_step, last_step)
  double last_loss = 0, val_loss = -1, persistence_loss = -1;
  bool stopped_by_signal = false;
  // Per rank: the median over the run's steps of the GEMM FLOP rate (the model's FLOPs: every product of
  // the forward and backward passes, over the step's wall time), and the ceiling (0 when not measured).
  double gemm_flop_per_s = 0, gemm_ceiling_flop_per_s = 0;
};

// Installs the SIGTERM / SIGINT handlers that ask a run to stop at the next step (then saves and returns).
void InstallStopHandlers();

Result<TrainRunReport> RunTraining(const TrainRunOptions& options, TensorCommunicator* world, std::ostream& out);

}  // namespace jigsaw::train
