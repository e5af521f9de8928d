// The device mesh and partition specs, as JAX names them: named axes ("domain=2,tensor=2", rank = row-major
// over the axes in order) and, per tensor, one axis name or null per dimension. A tensor's tile on a rank
// follows the one split rule (split.h); a replicated tile (an axis the tensor does not use) is owned by the
// lowest rank holding it. Checkpoints store tensors this way; the trainer's parameters map onto it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/box.h"
#include "base/status.h"

namespace jigsaw {

struct Mesh {
  std::vector<std::pair<std::string, int64_t>> axes;  // in order; rank = row-major over the axes

  // Strictly NAME=SIZE[,NAME=SIZE...]: names of letters, digits and '_', sizes positive whole numbers,
  // no axis twice. "" is one rank.
  static Result<Mesh> Parse(std::string_view text);
  std::string ToString() const;
  int64_t size() const;
  int64_t AxisSize(std::string_view axis) const;  // 0 when absent
  int64_t Coordinate(int64_t rank, std::string_view axis) const;
};

// Per dimension: null (not split), one axis, or several axes that split it as one axis of their product,
// row-major over them (JAX's P(("a", "b"))): "a*b" here, ["a", "b"] in JSON.
using PartitionSpec = std::vector<std::optional<std::string>>;      // empty: replicated
Result<PartitionSpec> ParsePartitionSpec(const nlohmann::json& j);  // ["domain", null], [["lat", "lon"], "tensor"]
std::vector<std::string> EntryAxes(const std::string& entry);       // "a*b" -> {"a", "b"}
nlohmann::json PartitionSpecToJson(const PartitionSpec& p);

// The box of a tensor of `shape` partitioned by `partition` that `rank` holds on `mesh`. Refused: a spec of
// another rank, an axis the mesh lacks or used twice, a dimension the split rule cannot split, a rank
// outside the mesh (kOutOfRange: ranks do not wrap round).
Result<Box> TileOf(std::span<const int64_t> shape, const PartitionSpec& partition, const Mesh& mesh, int64_t rank);

// Whether `rank` owns (writes) its tile: its coordinates on the axes `partition` does not use are all zero.
bool OwnsTile(const PartitionSpec& partition, const Mesh& mesh, int64_t rank);

}  // namespace jigsaw
