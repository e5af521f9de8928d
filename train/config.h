// What a WeatherMixer is (DESIGN.md, "Trainer") and how it is optimised. Plain structs; Validate refuses a
// model that cannot run on an s x s mesh before any work, naming the numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "train/block_matmul.h"

namespace jigsaw::train {

struct ModelConfig {
  int64_t channels = 0, height = 0, width = 0;  // C x H x W of a sample (after any crop)
  // S time-independent input channels (the store's `static` array: land-sea mask, orography...), embedded
  // beside the state by their own weight W_s [S ph pw, D]; 0: none.
  int64_t static_channels = 0;
  int64_t patch_h = 1, patch_w = 1;
  int64_t dim = 0, depth = 0, token_hidden = 0, channel_hidden = 0;  // D, L, Hs, Hf
  // The domain grid LAT x LON that orders the tokens (domain part first, row-major inside it). On an
  // s x s mesh lat_parts * lon_parts = s; a 1-rank run may use any grid (it holds every part).
  int64_t lat_parts = 1, lon_parts = 1;
  float ln_eps = 1e-5f;

  int64_t tokens() const { return (height / patch_h) * (width / patch_w); }
  int64_t patch_pixels() const { return patch_h * patch_w; }
  int64_t features() const { return channels * patch_pixels(); }                // F_in = F_out = C ph pw
  int64_t static_features() const { return static_channels * patch_pixels(); }  // S ph pw

  Status Validate(int64_t s) const;
  nlohmann::json ToJson() const;
  static Result<ModelConfig> FromJson(const nlohmann::json& j);
};

// A dataset store's tile grid LAT x LON x CH against the model on an s x s mesh: LAT LON = s domain parts
// that are the model's token order, CH = s channel groups; refused naming the numbers otherwise.
Status CheckTileGrid(const ModelConfig& c, int64_t s, int64_t lat, int64_t lon, int64_t ch);

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
