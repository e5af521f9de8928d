// What a WeatherMixer is (docs/models.md, docs/parallelism.md) and how it is optimised. Plain structs; Validate refuses a
// model that cannot run on an s x s mesh before any work, naming the numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "train/block_matmul.h"

namespace jigsaw::train {

// How a run cuts the sample's domain among the mesh rows: LAT x LON parts (a store's tile grid), part
// (a, b) on mesh row i = a LON + b, its tokens row-major inside it. A property of the run, like the mesh,
// never of the model: a model's parameters keep their token dimensions by patch position (ModelConfig's
// patch rows x patch columns), whatever grid trained it. One rank holds every part: its grid is 1x1.
struct DomainGrid {
  int64_t lat = 1, lon = 1;
  int64_t parts() const { return lat * lon; }
  std::string ToString() const { return std::to_string(lat) + "x" + std::to_string(lon); }
};

struct ModelConfig {
  int64_t channels = 0, height = 0, width = 0;  // C x H x W of a sample (after any crop)
  // S time-independent input channels (the store's `static` array: land-sea mask, orography...), embedded
  // beside the state by their own weight W_s [S ph pw, D]; 0: none.
  int64_t static_channels = 0;
  int64_t patch_h = 1, patch_w = 1;
  int64_t dim = 0, depth = 0, token_hidden = 0, channel_hidden = 0;  // D, L, Hs, Hf
  float ln_eps = 1e-5f;

  int64_t patch_rows() const { return height / patch_h; }  // the token grid: patch rows x patch columns
  int64_t patch_cols() const { return width / patch_w; }
  int64_t tokens() const { return patch_rows() * patch_cols(); }
  int64_t patch_pixels() const { return patch_h * patch_w; }
  int64_t features() const { return channels * patch_pixels(); }                // F_in = F_out = C ph pw
  int64_t static_features() const { return static_channels * patch_pixels(); }  // S ph pw

  // Refuses a model that cannot run on an s x s mesh over `grid` (s domain parts of whole patches, every
  // split dimension at least s long), naming the numbers.
  Status Validate(int64_t s, DomainGrid grid = {}) const;
  // The model's identity: sizes, patch and LayerNorm eps (no run property such as the domain grid).
  nlohmann::json ToJson() const;
  // Also reads the identities of checkpoints made before the domain grid left the model (their
  // "lat_parts" and "lon_parts" are the run's: LegacyDomainGrid).
  static Result<ModelConfig> FromJson(const nlohmann::json& j);
};

// The domain grid a checkpoint made before the canonical token layout recorded in its model (1x1 when
// absent): the token order of its token-mix tensors.
DomainGrid LegacyDomainGrid(const nlohmann::json& model);

// The domain grid of an s x s run over a store tiled LAT x LON x CH: the store's LAT x LON (s domain parts,
// CH = s channel groups, every part whole patches), or 1x1 on one rank, which reads any store whole.
// Refused naming the store's grid, the mesh and the model's patch otherwise.
Result<DomainGrid> RunDomainGrid(const ModelConfig& c, int64_t s, int64_t lat, int64_t lon, int64_t ch);

// The part bounds of every dimension the model splits, on an s x s mesh.
struct ModelSplits {
  Bounds tokens, dim, token_hidden, channel_hidden, features, channels;
  Bounds static_channels, static_features;  // the static channels in the same s groups (empty bounds: none)
};
ModelSplits SplitModel(const ModelConfig& c, int64_t s);

// The GEMMs of one sample's training step on one rank (1x1 mesh), in the order the step runs them: what
// a step's FLOPs are made of, and the shapes at which `jigsaw-bench`'s sgemm ceiling is measured.
struct GemmShape {
  bool trans_a, trans_b;
  int64_t m, n, k;
};
std::vector<GemmShape> StepGemmShapes(const ModelConfig& c);
// The local products of one rank of an s x s mesh: each of StepGemmShapes's with M, N and K cut s ways (the
// blocks the SUMMA kernels multiply; the larger part where a dimension does not divide).
std::vector<GemmShape> RankGemmShapes(const ModelConfig& c, int64_t s);

struct OptimizerConfig {
  float lr = 1e-3f, min_lr = 1e-4f;
  float embed_lr_scale = 1.0f;  // learning-rate factor of the embedding and the head
  int64_t warmup_steps = 0, total_steps = 1000;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;  // on matrices only; biases and LayerNorm gains are not decayed
  float clip = 1.0f;          // global gradient norm; 0 turns clipping off

  Status Validate() const;
  nlohmann::json ToJson() const;
  static Result<OptimizerConfig> FromJson(const nlohmann::json& j);
};

// Linear warm-up over warmup_steps (step 0 at lr / warmup_steps), then cosine from lr down to min_lr at
// total_steps; steps count from 0.
float LearningRate(const OptimizerConfig& o, int64_t step);

}  // namespace jigsaw::train
