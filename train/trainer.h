// One training step of WeatherMixer on a Jigsaw job: the batch's forward and backward passes, the sums
// that make replicated vectors' gradients whole, the data-parallel average, the global-norm clip and
// AdamW with its learning-rate schedule. The loop around it (loader, checkpoints) is jigsaw-train's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "train/config.h"
#include "train/weather_mixer.h"

namespace jigsaw::train {

struct StepResult {
  int64_t step = 0;        // the step just taken (0 for the first)
  double loss = 0;         // the batch loss before the update, averaged over the whole job's batch
  double grad_norm = 0;    // global, before clipping
  float lr = 0;            // the base learning rate used
  int64_t gemm_flops = 0;  // this rank's, this step
  int64_t bytes_sent = 0;  // this rank's, this step (block products only)
};

// A batch as this rank holds it: `size` samples of this rank's tile, x0 [size, c_j, h_i, w_i] and the targets
// x1 [size, steps, c_j, h_i, w_i] (the truth after each of `steps` autoregressive applications), in host
// memory or (on_device) already on the backend's device. The loss is the mean over samples and steps.
struct TileBatch {
  int64_t size = 0;
  const float* x0 = nullptr;
  const float* x1 = nullptr;
  bool on_device = false;
  int64_t steps = 1;
};

class Trainer {
 public:
  static Result<std::unique_ptr<Trainer>> Create(const ModelConfig& model, const OptimizerConfig& opt, Backend* backend,
                                                 MeshComms* mesh, uint64_t seed, DomainGrid grid = {});
  WeatherMixer& model() { return *model_; }
  int64_t step() const { return step_; }
  // Samples the model takes at once (0, the default: WeatherMixer::SamplesAtOnce's choice, about 1024 token
  // rows per product). The products grow with it, and so do the activations; the gradients are the same up to the
  // order of their sums.
  void set_micro_batch(int64_t samples) { micro_batch_ = samples; }
  void set_step(int64_t step) { step_ = step; }

  // The job's batch is every replica's `batch.size` samples: the loss is their mean.
  // `before_update` runs once the gradients are whole, just before the parameters and moments change
  // (jigsaw-train waits there for a checkpoint's copy of them, taken during the forward and backward).
  Result<StepResult> Step(const TileBatch& batch, const std::function<void()>& before_update = {});
  // Only the forward and backward passes and the gradient sums (no update): the loss, with every
  // parameter's grad holding the gradient of the job's batch loss (Step then clips and updates).
  Result<double> ComputeGradients(const TileBatch& batch);
  // The global gradient norm (each replicated vector counted once), summed over the model group.
  Result<double> GradientNorm();

 private:
  Trainer(Backend* be, MeshComms* mesh, const OptimizerConfig& opt) : be_(be), mesh_(mesh), opt_(opt) {}
  // 1 / (C H W x the job's batch): the loss is the mean over the job's samples of the per-pixel mean.
  float LossScale(const TileBatch& batch) const;
  // The sum over the model group and the replicas of every rank's share.
  Result<double> SumOverJob(double share);
  Backend* be_;
  MeshComms* mesh_;
  OptimizerConfig opt_;
  std::unique_ptr<WeatherMixer> model_;
  int64_t step_ = 0;
  int64_t micro_batch_ = 0;
};

}  // namespace jigsaw::train
