#include "storage/checkpoint/reshard.h"

#include <fnmatch.h>

#include "storage/checkpoint/read.h"

namespace jigsaw {

Status ReshardCheckpoint(KvStore* src_root, const std::string& step_dir, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, KvStore* dst_root,
                         const SaveOptions& options) {
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(src_root, step_dir));
  std::vector<TensorSpec> specs;
  for (const auto& t : m.tensors) {
    TensorSpec s = t.spec;
    if (partition) s.partition = partition(t.spec);
    specs.push_back(std::move(s));
  }
  SaveOptions o = options;
  if (o.metadata.empty()) o.metadata = m.metadata;
  return SaveCheckpoint(
      dst_root, m.step, mesh, specs,
      [&](int64_t, const TensorSpec& t, const Box& box) {
        return ReadTensorBox(src_root, step_dir, m, *m.Find(t.name), box);
      },
      o);
}

Result<std::function<PartitionSpec(const TensorSpec&)>> LoadPartitionRules(const nlohmann::json& rules) {
  if (!rules.is_object()) return InvalidArgumentError("a partition file is a JSON object of name pattern -> spec");
  std::vector<std::pair<std::string, PartitionSpec>> list;
  for (const auto& [pattern, spec] : rules.items()) {
    auto p = ParsePartitionSpec(spec);
    if (!p.ok()) return p.status().Annotate("pattern " + pattern);
    list.emplace_back(pattern, *p);
  }
  return std::function<PartitionSpec(const TensorSpec&)>([list](const TensorSpec& t) {
    for (const auto& [pattern, spec] : list)
      if (fnmatch(pattern.c_str(), t.name.c_str(), 0) == 0) return spec;
    return PartitionSpec{};
  });
}

}  // namespace jigsaw
