// The model file of jigsaw-train (model.json): the model's own sizes, the optimiser, the seed and
// per-channel loss weights. The grid and the channels come from the dataset store, not from here.
//
//   {"patch": [4, 4], "dim": 256, "depth": 2, "token_hidden": 256, "channel_hidden": 1024,
//    "lr": 1e-3, "min_lr": 1e-4, "embed_lr_scale": 1.0, "warmup_steps": 10, "weight_decay": 0.1,
//    "clip": 1.0, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "seed": 1,
//    "channel_weights": {"2m_temperature": 2.0}}
//
// "token_hidden" may be given as "token_mix_ratio" (Hs = ratio x tokens) instead. Unknown keys are refused,
// naming the key; keys starting with "_" are notes for people and ignored.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "train/config.h"

namespace jigsaw::train {

struct TrainConfig {
  ModelConfig model;           // patch, dim, depth, hidden sizes; channels and grid are filled from the store
  double token_mix_ratio = 0;  // when > 0, token_hidden = round(ratio x tokens) once the grid is known
  OptimizerConfig optimizer;
  uint64_t seed = 1;
  std::map<std::string, float> channel_weights;  // by channel name; others weigh 1
  nlohmann::json ToJson() const;
};

Result<TrainConfig> ParseTrainConfig(const nlohmann::json& j);

}  // namespace jigsaw::train
