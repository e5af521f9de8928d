// WeatherMixer in sharded checkpoints: each parameter as three tensors (its value, "adam_m/<name>",
// "adam_v/<name>"), named as the PyTorch oracle's state_dict, in the one stored layout of every parameter
// (Parameter::stored_shape: tokens by patch position, whatever mesh or domain grid wrote them), split on
// the run's StoredMesh, with the model, the data it was trained on and the run in the metadata
// ("jigsaw_train"). A rank loads exactly its blocks, whatever mesh and domain grid saved them (load-time
// reshard). Checkpoints made before the stored layout (token dimensions in the domain grid's order, the
// grid in the model as lat_parts x lon_parts) load too: their token-mix tensors are put in patch order.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobs/store_facts.h"
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
  nlohmann::json model;   // ModelConfig::ToJson (with lat_parts, lon_parts before the stored layout)
  nlohmann::json config;  // TrainConfig::ToJson
  nlohmann::json data;    // DataContract of the store it was trained on (null before it was recorded)
  int64_t batch_size = 0;  // per replica (0: not recorded)
  int64_t replicas = 0;    // data-parallel replicas of the run (0: not recorded)
  LoaderState loader;
};
Result<CheckpointRun> ReadCheckpointRun(KvStore* root, const std::string& step_dir);

// What a model needs of its data, recorded in every checkpoint and export: the channel names in order,
// the normalisation statistics (mean, std per channel), the static fields' names and statistics, the time
// step, the grid (latitudes, longitudes).
nlohmann::json DataContract(const StoreFacts& facts);
// A store against the checkpoint's recorded contract: refused naming the first difference (channel names,
// static fields, time step, grid); a checkpoint without a contract is checked by its model's sizes only.
Status CheckDataContract(const CheckpointRun& run, const StoreFacts& facts);

// The committed steps of a checkpoint root (step directories whose manifest reads), oldest first.
Result<std::vector<std::string>> CommittedSteps(KvStore* root);

// The step a run writing into `root` starts from, decided before any work. With `resume`: LATEST's step;
// a LATEST that cannot be read, is malformed or names a step whose manifest does not read is refused (a
// damaged root is never taken for an empty one); without LATEST, the newest committed step that verifies
// (every tile read and checked), noted on `note`; "" when the root holds no committed step. Without
// `resume`: "" for a root without committed steps, refused naming them otherwise (a fresh run would take
// them for unfinished saves and remove them).
Result<std::string> StartingStep(KvStore* root, bool resume, std::string* note);

// Loads this rank's blocks of every parameter (and of the Adam moments when `with_moments`) from step
// `step_dir` ("": LATEST). Refused, naming what differs, when the checkpoint holds another model.
Result<CheckpointRun> LoadModelCheckpoint(KvStore* root, const std::string& step_dir, WeatherMixer& model,
                                          bool with_moments);

// Starts an asynchronous save of this rank's blocks (collective over `comm`, the model group). With
// `copy_later` and the model in host memory, the saver copies the blocks while training goes on, and the
// caller must not change them before saver->TilesCopied() (device memory is always copied down first).
Status StartModelCheckpoint(AsyncCheckpointSaver* saver, KvStore* root, int64_t step, WeatherMixer& model,
                            const nlohmann::json& run_metadata, Communicator* comm, bool copy_later = false);

}  // namespace jigsaw::train
