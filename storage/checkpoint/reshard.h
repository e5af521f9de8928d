// Moving a checkpoint step to another mesh or other partition specs.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "storage/checkpoint/save.h"

namespace jigsaw {

// Rewrites a step on another mesh (partition specs as given per tensor name; tensors not named keep
// theirs), streaming tile intersections: memory holds one target tile at a time per worker.
Status ReshardCheckpoint(KvStore* src_root, const std::string& step_dir, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, KvStore* dst_root,
                         const SaveOptions& options);

// Partition files: {"pattern or name": ["domain", null], ...}; first matching pattern wins ('*' and '?'
// globs); unmatched tensors are replicated.
Result<std::function<PartitionSpec(const TensorSpec&)>> LoadPartitionRules(const nlohmann::json& rules);

}  // namespace jigsaw
