#include "parallel/mesh.h"

#include <cctype>
#include <algorithm>
#include <charconv>

#include "parallel/split.h"

namespace jigsaw {

Result<Mesh> Mesh::Parse(std::string_view text) {
  Mesh m;
  if (text.empty()) return m;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return InvalidArgumentError("mesh \"" + std::string(text) + "\" is not like domain=2,tensor=2");
    // Strictly NAME=SIZE: a name of letters, digits and '_' (not starting with a digit), all of SIZE a number.
    const std::string_view digits = item.substr(eq + 1);
    int64_t size = 0;
    auto [end_ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size);
    if (ec != std::errc() || end_ptr != digits.data() + digits.size() || size < 1) {
      return InvalidArgumentError("mesh axis \"" + std::string(item) + "\" in \"" + std::string(text) +
                                  "\" needs a positive whole size (mesh: NAME=SIZE,NAME=SIZE, e.g. domain=2,tensor=2)");
    }
    std::string name(item.substr(0, eq));
    const bool good_name = std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_';
    for (char c : name) {
      if (!good_name || !(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
        return InvalidArgumentError("mesh axis name \"" + name + "\" in \"" + std::string(text) +
                                    "\" is not a name (letters, digits, _)");
      }
    }
    if (m.AxisSize(name)) return InvalidArgumentError("mesh axis \"" + name + "\" given twice");
    // A rank is an int to MPI and NCCL: a mesh of more ranks than that is a typo, and its size() would overflow.
    constexpr int64_t kMaxRanks = int64_t{1} << 31;
    if (size > kMaxRanks / m.size()) {
      return InvalidArgumentError("mesh \"" + std::string(text) + "\" has more than 2^31 ranks");
    }
    m.axes.emplace_back(name, size);
    start = end + 1;
  }
  return m;
}

std::string Mesh::ToString() const {
  std::string s;
  for (const auto& [a, n] : axes) s += (s.empty() ? "" : ",") + a + "=" + std::to_string(n);
  return s;
}

int64_t Mesh::size() const {
  int64_t n = 1;
  for (const auto& [a, s] : axes) n *= s;
  return n;
}

int64_t Mesh::AxisSize(std::string_view axis) const {
  for (const auto& [a, s] : axes)
    if (a == axis) return s;
  return 0;
}

int64_t Mesh::Coordinate(int64_t rank, std::string_view axis) const {
  int64_t stride = 1;
  for (size_t i = axes.size(); i-- > 0;) {
    if (axes[i].first == axis) return (rank / stride) % axes[i].second;
    stride *= axes[i].second;
  }
  return 0;
}

std::vector<std::string> EntryAxes(const std::string& entry) {
  std::vector<std::string> axes;
  size_t start = 0;
  for (size_t star = entry.find('*'); star != std::string::npos; star = entry.find('*', start)) {
    axes.push_back(entry.substr(start, star - start));
    start = star + 1;
  }
  axes.push_back(entry.substr(start));
  return axes;
}

Result<PartitionSpec> ParsePartitionSpec(const nlohmann::json& j) {
  const auto bad = [&j] {
    return InvalidArgumentError("a partition spec is a list of axis names, lists of axis names or nulls, not " +
                                j.dump());
  };
  if (j.is_null()) return PartitionSpec{};
  if (!j.is_array()) return bad();
  PartitionSpec p;
  for (const auto& e : j) {
    if (e.is_null()) {
      p.push_back(std::nullopt);
    } else if (e.is_string() && e.get<std::string>().find('*') == std::string::npos) {
      p.push_back(e.get<std::string>());
    } else if (e.is_array() && !e.empty()) {
      std::string joined;
      for (const auto& a : e) {
        if (!a.is_string() || a.get<std::string>().empty() || a.get<std::string>().find('*') != std::string::npos)
          return bad();
        joined += (joined.empty() ? "" : "*") + a.get<std::string>();
      }
      p.push_back(joined);
    } else {
      return bad();
    }
  }
  return p;
}

nlohmann::json PartitionSpecToJson(const PartitionSpec& p) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& e : p) {
    if (!e) {
      j.push_back(nlohmann::json());
      continue;
    }
    const std::vector<std::string> axes = EntryAxes(*e);
    j.push_back(axes.size() == 1 ? nlohmann::json(axes[0]) : nlohmann::json(axes));
  }
  return j;
}

Result<Box> TileOf(std::span<const int64_t> shape, const PartitionSpec& partition, const Mesh& mesh, int64_t rank) {
  if (rank < 0 || rank >= mesh.size()) {
    return OutOfRangeError("rank " + std::to_string(rank) + " is not a rank of mesh " + mesh.ToString() +
                           " (ranks 0 to " + std::to_string(mesh.size() - 1) + ")");
  }
  if (!partition.empty() && partition.size() != shape.size()) {
    return InvalidArgumentError("partition spec has " + std::to_string(partition.size()) + " entries for " +
                                std::to_string(shape.size()) + " dimensions");
  }
  Box b{std::vector<int64_t>(shape.size(), 0), std::vector<int64_t>(shape.begin(), shape.end())};
  std::vector<std::string> used;
  for (size_t d = 0; d < partition.size(); ++d) {
    if (!partition[d]) continue;
    // Several axes split a dimension as one axis of their product, row-major over them (JAX's tuples).
    int64_t parts = 1, coordinate = 0;
    for (const std::string& axis : EntryAxes(*partition[d])) {
      if (std::find(used.begin(), used.end(), axis) != used.end())
        return InvalidArgumentError("axis " + axis + " used twice");
      used.push_back(axis);
      const int64_t size = mesh.AxisSize(axis);
      if (size == 0) return InvalidArgumentError("mesh " + mesh.ToString() + " has no axis \"" + axis + "\"");
      parts *= size;
      coordinate = coordinate * size + mesh.Coordinate(rank, axis);
    }
    RETURN_IF_ERROR(CheckSplit(shape[d], parts, "dimension " + std::to_string(d)));
    auto [begin, end] = SplitPart(shape[d], parts, coordinate);
    b.origin[d] = begin;
    b.shape[d] = end - begin;
  }
  return b;
}

bool OwnsTile(const PartitionSpec& partition, const Mesh& mesh, int64_t rank) {
  for (const auto& [axis, size] : mesh.axes) {
    bool used = false;
    for (const auto& p : partition) {
      if (!p) continue;
      for (const std::string& a : EntryAxes(*p)) used |= a == axis;
    }
    if (!used && mesh.Coordinate(rank, axis) != 0) return false;
  }
  return true;
}

}  // namespace jigsaw
