// WeatherMixer in sharded checkpoints: each parameter as three tensors (its value, "adam_m/<name>",
// "adam_v/<name>"), named as the PyTorch oracle's state_dict and split on the mesh domain=s,tensor=s as the
// parameter says (train/parameter.h), with the model and the run in the metadata ("jigsaw_train"). A rank
// loads exactly its blocks, whatever mesh saved them (load-time reshard).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/loader/loader.h"
#include "storage/checkpoint/checkpoint.h"
#include "train/weather_mixer.h"

namespace jigsaw::train {

struct CheckpointTensor {
  TensorSpec spec;
  Parameter* param;
  int which;  // 0 value, 1 adam_m, 2 adam_v
  Tensor& tensor() const { return which == 0 ? param->value : which == 1 ? param->adam_m : param->adam_v; }
};
std::vector<CheckpointTensor> CheckpointTensors(WeatherMixer& model);

// The "jigsaw_train" metadata of a step ("" : LATEST), refusing a checkpoint jigsaw-train did not write.
struct CheckpointRun {
  std::string step_dir;
  int64_t step = 0;
  nlohmann::json model;   // ModelConfig::ToJson
  nlohmann::json config;  // TrainConfig::ToJson
  LoaderState loader;
};
Result<CheckpointRun> ReadCheckpointRun(KvStore* root, const std::string& step_dir);

// Loads this rank's blocks of every parameter (and of the Adam moments when `with_moments`) from step
// `step_dir` ("": LATEST). Refused, naming what differs, when the checkpoint holds another model.
Result<CheckpointRun> LoadModelCheckpoint(KvStore* root, const std::string& step_dir, WeatherMixer& model,
                                          const Mesh& mesh, int64_t rank, bool with_moments);

// Starts an asynchronous save of this rank's blocks (collective over `comm`, the model group). With
// `copy_later` and the model in host memory, the saver copies the blocks while training goes on, and the
// caller must not change them before saver->TilesCopied() (device memory is always copied down first).
Status StartModelCheckpoint(AsyncCheckpointSaver* saver, KvStore* root, int64_t step, WeatherMixer& model,
                            const Mesh& mesh, int64_t rank, const nlohmann::json& run_metadata, Communicator* comm,
                            bool copy_later = false);

}  // namespace jigsaw::train
