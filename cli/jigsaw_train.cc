// jigsaw-train: WeatherMixer with Jigsaw parallelism on a jigsaw-shard store; one process per rank under
// mpirun (or one process alone on a 1x1 mesh). The body is train::RunTraining (jobs/train_run.h).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/common_flags.h"
#include "cli/mpi_world.h"
#include "jobs/train_run.h"

using namespace jigsaw;

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-train: train WeatherMixer (an MLP-Mixer weather model) with Jigsaw parallelism on a store written by "
      "jigsaw-shard. Run one process per rank: mpirun -np N jigsaw-train ..., N = replicas x s^2 for --mesh "
      "domain=s,tensor=s, which must match the store's tile grid (LAT x LON = s, CH = s; a 1x1 mesh reads any "
      "store whole). SIGTERM or SIGINT saves a checkpoint and exits 0; --resume continues from it."};
  train::TrainRunOptions o;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  bool json = false;
  app.add_option("--data", o.data, "the store (path, file://, s3://, http(s)://, gs://)")->required();
  app.add_option("--mesh", o.mesh, "domain=s,tensor=s")->capture_default_str();
  app.add_option("--config", o.config,
                 "model.json: patch, dim, depth, token_hidden, channel_hidden, optimiser, seed, "
                 "channel_weights (see examples/model_tiny.json)")
      ->required();
  app.add_option("--train-start", o.train_start,
                 "first time of the training window (e.g. 2020-01-01T00; default: the store's first)");
  app.add_option("--train-end", o.train_end,
                 "last time of the training window, inclusive (a bare date: the whole day)");
  app.add_option("--val-start", o.val_start, "first time of the validation window");
  app.add_option("--val-end", o.val_end, "last time of the validation window (validation runs when both are given)");
  app.add_option("--steps", o.steps, "total optimiser steps (also the cosine schedule's length)")
      ->capture_default_str();
  app.add_option("--stop-at", o.stop_at,
                 "stop after this many steps as a preemption would: checkpoint, exit 0 "
                 "(a later --resume continues the same schedule)");
  app.add_option("--batch-size", o.batch_size, "samples per step per replica")->capture_default_str();
  app.add_option("--micro-batch", o.micro_batch,
                 "samples through the model at once (0: enough for about 1024 token rows per product on a rank): "
                 "their tokens are the rows of every product, so more samples make larger GEMMs and hold more "
                 "activations")
      ->capture_default_str();
  app.add_option("--rollout-steps", o.rollout_steps,
                 "K: train on the mean loss of K autoregressive applications of the model (back-propagated through "
                 "all K); validation uses the same K")
      ->capture_default_str();
  app.add_option("--ckpt", o.ckpt, "checkpoint root (path or URL); saved asynchronously");
  app.add_option("--ckpt-every", o.ckpt_every, "steps between checkpoints (0: at the end only)")->capture_default_str();
  app.add_flag("--resume", o.resume,
               "continue from the checkpoint root's LATEST, on any mesh and store tiling of the same data (without "
               "LATEST: the newest step that verifies); without it, a root holding committed steps is refused");
  app.add_option("--val-every", o.val_every, "steps between validations (0: about 10 times in the run, and at the end)")
      ->capture_default_str();
  app.add_option("--val-batches", o.val_batches, "batches per validation (0: the whole window)")->capture_default_str();
  app.add_option("--log", o.log,
                 "JSON lines, one per step, validation and checkpoint, each with its kind and time (rank 0 writes); "
                 "jigsaw-plot-train draws it");
  app.add_option("--tensorboard", o.tensorboard,
                 "a folder for TensorBoard event files, written as the run goes (rank 0): train/loss, lr, grad_norm, "
                 "samples_per_s, loader_wait_s; val/loss, persistence_loss and per-channel MSE; checkpoint stalls. "
                 "Follow it with `tensorboard --logdir DIR`; W&B and MLflow import it");
  app.add_option("--print-every", o.print_every_s,
                 "seconds between the progress lines printed without a terminal (mpirun, batch jobs)")
      ->capture_default_str();
  app.add_option("--backend", o.backend,
                 "cpu (OpenBLAS), cpu:bf16 (bfloat16 products on the CPU: cuda:bf16's arithmetic), cuda (cuBLAS, "
                 "float32), cuda:tf32 or cuda:bf16")
      ->capture_default_str();
  app.add_option("--blas-threads", o.threads, "BLAS threads per rank (0: the library's default)")
      ->capture_default_str();
  app.add_option("--prefetch", o.prefetch, "batches the loader reads ahead")->capture_default_str();
  app.add_flag("--recompute", o.recompute,
               "recompute each mixer block's activations in the backward instead of keeping them: memory for one "
               "block's activations (plus each block's input) instead of every block's, for one more forward pass "
               "of the blocks; the same gradients bit for bit");
  bool no_overlap = false;
  app.add_flag("--no-overlap", no_overlap,
               "on a mesh, wait for each step of a Jigsaw product's exchanges before starting the next instead of "
               "moving the next step's blocks while this one multiplies (for measuring what the overlap gains; the "
               "same results bit for bit)");
  bool no_ceiling = false;
  app.add_flag("--no-gemm-ceiling", no_ceiling,
               "skip measuring the backend's GEMM rate at this rank's product shapes before the first step (the "
               "ceiling each step's GFLOP/s is shown against)");
  app.add_flag("--json", json, "print the run's summary as one JSON object on stdout");
  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);
  o.gemm_ceiling = !no_ceiling;
  o.overlap = !no_overlap;

  cli::MpiWorld world;
  if (!world.status().ok()) return cli::Fail("jigsaw-train", world.status());
  o.progress = world->rank() == 0 && isatty(2);
  train::InstallStopHandlers();
  std::ostream& log = json ? std::cerr : std::cout;
  auto report = train::RunTraining(o, world.get(), log);
  if (!report.ok()) return world.Fail("jigsaw-train", report.status());
  if (json && world->rank() == 0) {
    std::cout << nlohmann::json{{"first_step", report->first_step},
                                {"last_step", report->last_step},
                                {"loss", report->last_loss},
                                {"val_loss", report->val_loss},
                                {"persistence_loss", report->persistence_loss},
                                {"stopped_by_signal", report->stopped_by_signal},
                                {"gemm_flop_per_s_per_rank", report->gemm_flop_per_s},
                                {"gemm_ceiling_flop_per_s_per_rank", report->gemm_ceiling_flop_per_s}}
                     .dump()
              << "\n";
  }
  return 0;
}
