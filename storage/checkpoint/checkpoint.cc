#include "storage/checkpoint/checkpoint.h"

#include "parallel/split.h"

#include <fnmatch.h>

#include <cctype>
#include <charconv>
#include <tbb/parallel_for.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "storage/codec/codec.h"
#include "storage/codec/crc32c.h"
#include "storage/codec/json_fields.h"

namespace jigsaw {
namespace {

constexpr int64_t kAlign = 4096;
constexpr int64_t kBlock = 1 << 20;

std::string RankFile(int64_t rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank-%05lld.bin", static_cast<long long>(rank));
  return buf;
}

int64_t Volume(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::vector<uint32_t> BlockCrcs(std::string_view bytes) {
  std::vector<uint32_t> out;
  for (size_t b = 0; b < bytes.size(); b += kBlock) out.push_back(Crc32c(bytes.substr(b, kBlock)));
  return out;
}

bool Overlap(const Box& a, const Box& b) {
  for (size_t d = 0; d < a.shape.size(); ++d)
    if (a.origin[d] + a.shape[d] <= b.origin[d] || b.origin[d] + b.shape[d] <= a.origin[d]) return false;
  return true;
}

Box Intersection(const Box& a, const Box& b) {
  Box r;
  for (size_t d = 0; d < a.shape.size(); ++d) {
    int64_t lo = std::max(a.origin[d], b.origin[d]), hi = std::min(a.origin[d] + a.shape[d], b.origin[d] + b.shape[d]);
    r.origin.push_back(lo);
    r.shape.push_back(std::max<int64_t>(0, hi - lo));
  }
  return r;
}

// A rank owns its tile when its coordinates on the axes the tensor does not use are all zero: the lowest
// of the ranks holding the same (replicated) tile.
bool Owns(const TensorSpec& t, const Mesh& mesh, int64_t rank) {
  for (const auto& [axis, size] : mesh.axes) {
    bool used = false;
    for (const auto& p : t.partition) used |= p && *p == axis;
    if (!used && mesh.Coordinate(rank, axis) != 0) return false;
  }
  return true;
}

Result<std::string> ReadText(KvStore* root, const std::string& key) {
  ASSIGN_OR_RETURN(ReadResult r, root->Read(key));
  if (r.missing) return NotFoundError(root->url() + ": no " + key);
  return r.value;
}

}  // namespace

// ---- mesh and partition specs ----

Result<Mesh> Mesh::Parse(std::string_view text) {
  Mesh m;
  if (text.empty()) return m;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) return InvalidArgumentError("mesh \"" + std::string(text) + "\" is not like domain=2,tensor=2");
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

Result<PartitionSpec> ParsePartitionSpec(const nlohmann::json& j) {
  if (j.is_null()) return PartitionSpec{};
  if (!j.is_array()) return InvalidArgumentError("a partition spec is a list of axis names or nulls, not " + j.dump());
  PartitionSpec p;
  for (const auto& e : j) {
    if (e.is_null()) p.push_back(std::nullopt);
    else if (e.is_string()) p.push_back(e.get<std::string>());
    else return InvalidArgumentError("a partition spec is a list of axis names or nulls, not " + j.dump());
  }
  return p;
}

nlohmann::json PartitionSpecToJson(const PartitionSpec& p) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& e : p) j.push_back(e ? nlohmann::json(*e) : nlohmann::json());
  return j;
}

Result<Box> TileOf(const TensorSpec& t, const Mesh& mesh, int64_t rank) {
  if (!t.partition.empty() && t.partition.size() != t.shape.size()) {
    return InvalidArgumentError("tensor " + t.name + ": partition spec has " + std::to_string(t.partition.size()) +
                                " entries for " + std::to_string(t.shape.size()) + " dimensions");
  }
  Box b{std::vector<int64_t>(t.shape.size(), 0), t.shape};
  for (size_t d = 0; d < t.partition.size(); ++d) {
    if (!t.partition[d]) continue;
    const std::string& axis = *t.partition[d];
    for (size_t e = 0; e < d; ++e)
      if (t.partition[e] && *t.partition[e] == axis) return InvalidArgumentError("tensor " + t.name + ": axis " + axis + " used twice");
    int64_t parts = mesh.AxisSize(axis);
    if (parts == 0) return InvalidArgumentError("tensor " + t.name + ": mesh " + mesh.ToString() + " has no axis \"" + axis + "\"");
    RETURN_IF_ERROR(CheckSplit(t.shape[d], parts, "dimension " + std::to_string(d)).Annotate("tensor " + t.name));
    auto [begin, end] = SplitPart(t.shape[d], parts, mesh.Coordinate(rank, axis));
    b.origin[d] = begin;
    b.shape[d] = end - begin;
  }
  return b;
}

// ---- manifest ----

std::string StepDirectory(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

nlohmann::json Manifest::ToJson() const {
  nlohmann::json mesh_j = nlohmann::json::array();
  for (const auto& [a, s] : mesh.axes) mesh_j.push_back({a, s});
  nlohmann::json tj = nlohmann::json::object();
  for (const auto& t : tensors) {
    nlohmann::json tiles = nlohmann::json::array();
    for (const auto& tile : t.tiles) {
      tiles.push_back({{"file", RankFile(tile.rank)}, {"rank", tile.rank}, {"origin", tile.box.origin},
                       {"shape", tile.box.shape}, {"offset", tile.offset}, {"nbytes", tile.nbytes},
                       {"crc32c", tile.crc32c}, {"block_crc32c", tile.block_crc32c}});
    }
    tj[t.spec.name] = {{"dtype", t.spec.dtype.name}, {"shape", t.spec.shape},
                       {"partition", PartitionSpecToJson(t.spec.partition)}, {"tiles", tiles}};
  }
  return {{"format", "jigsaw-checkpoint"}, {"version", {kMajor, kMinor}}, {"step", step}, {"mesh", mesh_j},
          {"block_bytes", kBlock}, {"tensors", tj}, {"metadata", metadata}};
}

Result<Manifest> Manifest::FromJson(const nlohmann::json& j) {
  try {
    if (!j.is_object() || j.value("format", "") != "jigsaw-checkpoint") return InvalidArgumentError("not a jigsaw checkpoint manifest");
    ASSIGN_OR_RETURN(int64_t major, AsInt(j.at("version").at(0), "version"));
    if (major != kMajor) {
      return UnimplementedError("checkpoint format version " + std::to_string(major) + " (this jigsaw reads version " +
                                std::to_string(kMajor) + ")");
    }
    Manifest m;
    ASSIGN_OR_RETURN(m.step, AsInt(j.at("step"), "step"));
    for (const auto& a : j.at("mesh")) {
      ASSIGN_OR_RETURN(int64_t size, AsInt(a.at(1), "mesh axis size", 1));
      m.mesh.axes.emplace_back(a.at(0).get<std::string>(), size);
    }
    for (const auto& [name, t] : j.at("tensors").items()) {
      TensorRecord r;
      r.spec.name = name;
      ASSIGN_OR_RETURN(r.spec.dtype, DataTypeFromName(t.at("dtype").get<std::string>()));
      ASSIGN_OR_RETURN(r.spec.shape, IntList(t.at("shape"), "shape"));
      ASSIGN_OR_RETURN(r.spec.partition, ParsePartitionSpec(t.at("partition")));
      for (const auto& tile : t.at("tiles")) {
        TileRecord tr;
        ASSIGN_OR_RETURN(tr.rank, AsInt(tile.at("rank"), "rank", 0));
        ASSIGN_OR_RETURN(tr.box.origin, IntList(tile.at("origin"), "origin"));
        ASSIGN_OR_RETURN(tr.box.shape, IntList(tile.at("shape"), "shape"));
        ASSIGN_OR_RETURN(tr.offset, AsInt(tile.at("offset"), "offset", 0));
        ASSIGN_OR_RETURN(tr.nbytes, AsInt(tile.at("nbytes"), "nbytes", 0));
        ASSIGN_OR_RETURN(int64_t crc, AsInt(tile.at("crc32c"), "crc32c", 0, 0xFFFFFFFFll));
        tr.crc32c = static_cast<uint32_t>(crc);
        ASSIGN_OR_RETURN(auto blocks, IntList(tile.at("block_crc32c"), "block_crc32c", 0, 0xFFFFFFFFll));
        for (int64_t b : blocks) tr.block_crc32c.push_back(static_cast<uint32_t>(b));
        if (tr.box.origin.size() != r.spec.shape.size() || tr.box.shape.size() != r.spec.shape.size() ||
            tr.nbytes != Volume(tr.box.shape) * r.spec.dtype.size ||
            static_cast<int64_t>(tr.block_crc32c.size()) != (tr.nbytes + kBlock - 1) / kBlock) {
          return DataLossError("tensor " + name + ": a tile record is inconsistent");
        }
        r.tiles.push_back(std::move(tr));
      }
      m.tensors.push_back(std::move(r));
    }
    m.metadata = j.value("metadata", nlohmann::json::object());
    return m;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("malformed manifest: ") + e.what());
  }
}

const TensorRecord* Manifest::Find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.spec.name == name) return &t;
  return nullptr;
}

// ---- save ----

namespace {

// The manifest carries a crc32c of its own text (computed with the field absent), so that a flipped byte
// that leaves the JSON valid (a digit of an offset, say) is still caught.
uint32_t ManifestChecksum(nlohmann::json j) {
  j.erase("manifest_crc32c");
  return Crc32c(j.dump(1));
}

std::string ManifestText(const Manifest& m) {
  nlohmann::json j = m.ToJson();
  j["manifest_crc32c"] = ManifestChecksum(j);
  return j.dump(1);
}

}  // namespace

namespace {

nlohmann::json TileToJson(size_t tensor, const TileRecord& t) {
  return {{"tensor", tensor}, {"rank", t.rank}, {"origin", t.box.origin}, {"shape", t.box.shape}, {"offset", t.offset},
          {"nbytes", t.nbytes}, {"crc32c", t.crc32c}, {"block_crc32c", t.block_crc32c}};
}

TileRecord TileFromJson(const nlohmann::json& j) {
  TileRecord t;
  t.rank = j["rank"];
  t.box.origin = j["origin"].get<std::vector<int64_t>>();
  t.box.shape = j["shape"].get<std::vector<int64_t>>();
  t.offset = j["offset"];
  t.nbytes = j["nbytes"];
  t.crc32c = j["crc32c"];
  t.block_crc32c = j["block_crc32c"].get<std::vector<uint32_t>>();
  return t;
}

// Rank 0 decides; every rank returns its verdict.
// Every element of the tensor in exactly one tile: no overlaps, and the volumes add up to the tensor's.
Status CheckCoverage(const TensorRecord& t) {
  int64_t covered = 0;
  for (size_t i = 0; i < t.tiles.size(); ++i) {
    covered += Volume(t.tiles[i].box.shape);
    for (size_t k = 0; k < i; ++k) {
      if (Overlap(t.tiles[i].box, t.tiles[k].box)) return DataLossError("tensor " + t.spec.name + ": tiles overlap");
    }
  }
  if (covered != Volume(t.spec.shape)) return DataLossError("tensor " + t.spec.name + ": tiles do not cover the tensor");
  return OkStatus();
}

// Names the first thing rank `r`'s save plan disagrees on with rank 0's.
std::string DescribePlanDifference(size_t r, const nlohmann::json& theirs, const nlohmann::json& ours) {
  const std::string who = "rank " + std::to_string(r) + " saves ";
  if (theirs["step"] != ours["step"]) return who + "step " + theirs["step"].dump() + ", rank 0 step " + ours["step"].dump();
  if (theirs["mesh"] != ours["mesh"]) {
    return who + "on mesh " + theirs["mesh"].get<std::string>() + ", rank 0 on " + ours["mesh"].get<std::string>();
  }
  const auto& a = theirs["tensors"];
  const auto& b = ours["tensors"];
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i >= a.size()) return who + "no tensor " + b[i][0].dump() + " (rank 0 does)";
    if (i >= b.size()) return who + "tensor " + a[i][0].dump() + ", which rank 0 does not";
    if (a[i] != b[i]) return who + "tensor " + a[i].dump() + " where rank 0 saves " + b[i].dump();
  }
  return who + "something else than rank 0";
}

Status Agree(Communicator* comm, Status local) {
  std::string verdict = local.ok() ? "" : local.message();
  RETURN_IF_ERROR(comm->Broadcast(&verdict));
  if (verdict.empty()) return OkStatus();
  return local.ok() ? Status(StatusCode::kFailedPrecondition, verdict) : local;
}

// The ranks of `mesh` whose files this process writes: every one when it saves alone, else its own.
std::vector<int64_t> RanksOf(const Mesh& mesh, Communicator* comm) {
  std::vector<int64_t> mine;
  if (comm->size() == 1) {
    for (int64_t r = 0; r < mesh.size(); ++r) mine.push_back(r);
  } else {
    mine.push_back(comm->rank());
  }
  return mine;
}

std::string SavePayload(const Status& error, nlohmann::json tiles) {
  return nlohmann::json{{"error", error.ok() ? "" : error.message()}, {"tiles", std::move(tiles)}}.dump();
}

// Save, phase 1 (collective): the ranks agree on what they save, and rank 0 clears unfinished saves.
Status PrepareSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                   Communicator* comm) {
  // Every rank checks its arguments and sends rank 0 what it was asked to save: ranks that disagree on the
  // step, the mesh or the tensors (a name, shape, dtype, partition or their order) would make a manifest
  // that fits none of them. No rank leaves before the verdict, so none waits on a rank that left.
  Status valid = [&]() -> Status {
    if (comm->size() > 1 && comm->size() != mesh.size()) {
      return InvalidArgumentError("mesh " + mesh.ToString() + " has " + std::to_string(mesh.size()) + " ranks but " +
                                  std::to_string(comm->size()) + " processes save it");
    }
    for (const auto& t : tensors)
      for (int64_t r = 0; r < mesh.size(); ++r) RETURN_IF_ERROR(TileOf(t, mesh, r).status());
    return OkStatus();
  }();
  nlohmann::json plan = {{"step", step}, {"mesh", mesh.ToString()}, {"tensors", nlohmann::json::array()}};
  for (const auto& t : tensors) {
    plan["tensors"].push_back({t.name, t.dtype.name, t.shape, PartitionSpecToJson(t.partition)});
  }
  nlohmann::json hello = {{"error", valid.ok() ? "" : valid.message()}, {"plan", plan}};
  ASSIGN_OR_RETURN(auto plans, comm->Gather(hello.dump()));
  // Rank 0 then removes the garbage of unfinished saves (steps without a manifest) before anyone writes.
  Status prepared;
  if (comm->rank() == 0) {
    prepared = [&]() -> Status {
      for (size_t r = 0; r < plans.size(); ++r) {
        nlohmann::json j = nlohmann::json::parse(plans[r]);
        const std::string who = comm->size() > 1 ? "rank " + std::to_string(r) + ": " : "";
        if (!j["error"].get<std::string>().empty()) return InvalidArgumentError(who + j["error"].get<std::string>());
        if (j["plan"] != plan) return InvalidArgumentError(DescribePlanDifference(r, j["plan"], plan));
      }
      ASSIGN_OR_RETURN(auto keys, root->List("step-"));
      std::set<std::string> committed;
      for (const auto& e : keys)
        if (e.key.ends_with("/manifest.json")) committed.insert(e.key.substr(0, e.key.find('/')));
      const std::string dir = StepDirectory(step);
      if (committed.count(dir)) return FailedPreconditionError(root->url() + ": step " + dir + " is already committed");
      for (const auto& e : keys)
        if (!committed.count(e.key.substr(0, e.key.find('/')))) RETURN_IF_ERROR(root->Delete(e.key));
      return OkStatus();
    }();
  }
  return Agree(comm, prepared);
}

// Save, phase 2 (this process alone): the files of ranks `mine`. Returns what rank 0 needs to commit (the
// tile records, or the error), for CommitSave.
std::string WriteRankFiles(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                           const TileProvider& provider, const SaveOptions& options, const std::vector<int64_t>& mine) {
  const std::string dir = StepDirectory(step);
  std::mutex mu;
  Status first;
  nlohmann::json records = nlohmann::json::array();
  tbb::parallel_for(size_t{0}, mine.size(), [&](size_t k) {
    const int64_t rank = mine[k];
    // Tiles stream into the rank file as the provider hands them over: never the whole file in memory.
    std::unique_ptr<KvWriter> file;
    int64_t size = 0;
    std::vector<nlohmann::json> written;
    Status s = [&]() -> Status {
      for (size_t ti = 0; ti < tensors.size(); ++ti) {
        const TensorSpec& t = tensors[ti];
        if (!Owns(t, mesh, rank)) continue;
        Box box = TileOf(t, mesh, rank).value();
        ASSIGN_OR_RETURN(std::string bytes, provider(rank, t, box));
        if (static_cast<int64_t>(bytes.size()) != Volume(box.shape) * t.dtype.size) {
          return InvalidArgumentError("tensor " + t.name + ": rank " + std::to_string(rank) + " supplied " +
                                      std::to_string(bytes.size()) + " bytes for tile " + box.ToString());
        }
        if (!file) {
          ASSIGN_OR_RETURN(file, root->OpenWriter(dir + "/" + RankFile(rank), {.sync = options.sync, .direct = options.direct}));
        }
        const int64_t offset = (size + kAlign - 1) / kAlign * kAlign;
        static const std::string kZeros(kAlign, '\0');
        RETURN_IF_ERROR(file->Append(std::string_view(kZeros).substr(0, offset - size)));
        RETURN_IF_ERROR(file->Append(bytes));
        size = offset + static_cast<int64_t>(bytes.size());
        std::vector<uint32_t> blocks = BlockCrcs(bytes);
        uint32_t whole = 0;  // the tile's CRC from its blocks' CRCs: one pass over the bytes, not two
        for (size_t b = 0; b < blocks.size(); ++b) {
          whole = Crc32cCombine(whole, blocks[b], std::min<uint64_t>(kBlock, bytes.size() - b * kBlock));
        }
        TileRecord rec{rank, box, offset, static_cast<int64_t>(bytes.size()), whole, std::move(blocks)};
        written.push_back(TileToJson(ti, rec));
      }
      return file ? file->Commit() : OkStatus();
    }();
    std::lock_guard lock(mu);
    if (!s.ok() && first.ok()) first = s;
    for (auto& w : written) records.push_back(std::move(w));
  });
  return SavePayload(first, std::move(records));
}

// Save, phase 3 (collective): rank 0 gathers every rank's payload, checks that every element of every
// tensor is covered exactly once, writes the manifest, then LATEST. Every rank returns the same verdict.
Status CommitSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                  const SaveOptions& options, Communicator* comm, const std::string& payload) {
  const std::string dir = StepDirectory(step);
  ASSIGN_OR_RETURN(auto gathered, comm->Gather(payload));

  Status committed;
  if (comm->rank() == 0) {
    committed = [&]() -> Status {
      Manifest m;
      m.step = step;
      m.mesh = mesh;
      m.metadata = options.metadata;
      for (const auto& t : tensors) m.tensors.push_back({t, {}});
      for (const auto& text : gathered) {
        nlohmann::json j = nlohmann::json::parse(text);
        if (!j["error"].get<std::string>().empty()) return Status(StatusCode::kIo, j["error"].get<std::string>());
        for (const auto& tile : j["tiles"]) m.tensors[tile["tensor"].get<size_t>()].tiles.push_back(TileFromJson(tile));
      }
      for (auto& t : m.tensors) {
        std::sort(t.tiles.begin(), t.tiles.end(), [](const TileRecord& a, const TileRecord& b) { return a.rank < b.rank; });
        Status covered = CheckCoverage(t);
        if (!covered.ok()) return InternalError(covered.message());
      }
      RETURN_IF_ERROR(root->Write(dir + "/manifest.json", ManifestText(m), {.sync = options.sync}));
      return root->Write("LATEST", dir + "\n", {.sync = options.sync});
    }();
  }
  return Agree(comm, committed);
}


}  // namespace

Status SaveCheckpoint(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                      const TileProvider& provider, const SaveOptions& options, Communicator* comm) {
  std::unique_ptr<Communicator> local;
  if (!comm) {
    local = NewLocalCommunicator();
    comm = local.get();
  }
  RETURN_IF_ERROR(PrepareSave(root, step, mesh, tensors, comm));
  return CommitSave(root, step, mesh, tensors, options, comm,
                    WriteRankFiles(root, step, mesh, tensors, provider, options, RanksOf(mesh, comm)));
}

TileProvider TilesFromMemory(std::vector<TensorSpec> tensors, std::vector<TensorBuffer> buffers, bool whole) {
  return [tensors = std::move(tensors), buffers = std::move(buffers), whole](
             int64_t rank, const TensorSpec& t, const Box& box) -> Result<std::string> {
    size_t i = 0;
    while (i < tensors.size() && tensors[i].name != t.name) ++i;
    if (i == tensors.size() || i >= buffers.size()) return InternalError("tensor " + t.name + ": no buffer given");
    const TensorBuffer& b = buffers[i];
    const std::vector<int64_t>& expected = whole ? t.shape : box.shape;
    if (b.shape != expected) {
      return InvalidArgumentError("tensor " + t.name + ": " +
                                  (whole ? "the whole tensor is " + nlohmann::json(t.shape).dump()
                                         : "rank " + std::to_string(rank) + "'s tile " + box.ToString() + " is " +
                                               nlohmann::json(box.shape).dump()) +
                                  " but the buffer given is " + nlohmann::json(b.shape).dump());
    }
    const size_t n = static_cast<size_t>(box.num_elements() * t.dtype.size);
    if (!whole) return std::string(b.data, n);
    std::string out;
    out.resize_and_overwrite(n, [&](char* p, size_t) {  // every byte is copied in: no zero fill first
      std::vector<int64_t> zero(box.shape.size(), 0);
      CopyBox(b.data, t.shape, box.origin, p, box.shape, zero, box.shape, t.dtype.size);
      return n;
    });
    return out;
  };
}

// ---- async ----

struct AsyncCheckpointSaver::State {
  KvStore* root = nullptr;
  int64_t step = 0;
  Mesh mesh;
  std::vector<TensorSpec> tensors;
  SaveOptions options;
  Communicator* comm = nullptr;  // nullptr: this process saves alone
  Status prepared;               // phase 1's verdict; when not ok there is nothing to commit
  std::thread worker;            // phase 2
  std::string payload;           // what it wrote, for phase 3
};

AsyncCheckpointSaver::~AsyncCheckpointSaver() {
  if (state_ && state_->comm) {
    // A commit is collective: the other ranks may not be committing now. Finish writing, do not commit
    // (the step stays unfinished; LATEST keeps the previous one; the next save clears it).
    if (state_->worker.joinable()) state_->worker.join();
    return;
  }
  (void)Wait();
}

bool AsyncCheckpointSaver::in_flight() const { return state_ && state_->worker.joinable(); }

Status AsyncCheckpointSaver::Wait() {
  if (!state_) return OkStatus();
  std::shared_ptr<State> state = std::move(state_);
  if (state->worker.joinable()) state->worker.join();
  if (!state->prepared.ok()) return state->prepared;
  std::unique_ptr<Communicator> local;
  Communicator* comm = state->comm;
  if (!comm) {
    local = NewLocalCommunicator();
    comm = local.get();
  }
  return CommitSave(state->root, state->step, state->mesh, state->tensors, state->options, comm, state->payload);
}

Status AsyncCheckpointSaver::Start(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                                   const TileProvider& provider, const SaveOptions& options, Communicator* comm) {
  Status previous = Wait();  // at most one save in flight
  auto state = std::make_shared<State>();
  state->root = root;
  state->step = step;
  state->mesh = mesh;
  state->tensors = tensors;
  state->options = options;
  state->comm = comm;
  state_ = state;
  std::unique_ptr<Communicator> local;
  if (!comm) {
    local = NewLocalCommunicator();
    comm = local.get();
  }
  state->prepared = PrepareSave(root, step, mesh, tensors, comm);
  if (!state->prepared.ok()) return previous;
  // Copy this process's tiles now; the background writer reads only these copies. A failed copy is
  // committed as a failure by Wait(), so that no rank waits forever on this one.
  const std::vector<int64_t> mine = RanksOf(mesh, comm);
  auto tiles = std::make_shared<std::map<std::pair<int64_t, std::string>, std::string>>();
  Status copied = [&]() -> Status {
    for (const auto& t : tensors) {
      for (int64_t r : mine) {
        if (!Owns(t, mesh, r)) continue;
        ASSIGN_OR_RETURN(Box box, TileOf(t, mesh, r));
        ASSIGN_OR_RETURN(std::string bytes, provider(r, t, box));
        (*tiles)[{r, t.name}] = std::move(bytes);
      }
    }
    return OkStatus();
  }();
  if (!copied.ok()) {
    state->payload = SavePayload(copied, nlohmann::json::array());
    return previous;
  }
  state->worker = std::thread([state, tiles, mine] {
    state->payload = WriteRankFiles(state->root, state->step, state->mesh, state->tensors,
                                    [&](int64_t rank, const TensorSpec& t, const Box&) -> Result<std::string> {
                                      return std::move(tiles->at({rank, t.name}));
                                    },
                                    state->options, mine);
  });
  return previous;
}

// ---- read ----

Result<std::string> LatestStep(KvStore* root) {
  ASSIGN_OR_RETURN(std::string latest, ReadText(root, "LATEST"));
  while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
  if (latest.empty() || latest.find('/') != std::string::npos) return DataLossError(root->url() + ": LATEST is malformed");
  return latest;
}

Result<std::pair<std::unique_ptr<KvStore>, std::string>> OpenCheckpointStep(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.starts_with("step-")) {
    ASSIGN_OR_RETURN(auto root, OpenKvStore(slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash)));
    return std::make_pair(std::move(root), base);
  }
  ASSIGN_OR_RETURN(auto root, OpenKvStore(path));
  ASSIGN_OR_RETURN(std::string step, LatestStep(root.get()));
  return std::make_pair(std::move(root), step);
}

Result<Manifest> ReadManifest(KvStore* root, std::string step_dir) {
  if (step_dir.empty()) {
    ASSIGN_OR_RETURN(step_dir, LatestStep(root));
  }
  const std::string key = step_dir + "/manifest.json";
  ASSIGN_OR_RETURN(std::string text, ReadText(root, key));
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, root->url() + "/" + key));
  if (!j.is_object() || !j.contains("manifest_crc32c") || j["manifest_crc32c"] != ManifestChecksum(j)) {
    return DataLossError(root->url() + "/" + key + ": manifest checksum mismatch (the manifest is corrupt)");
  }
  auto m = Manifest::FromJson(j);
  if (!m.ok()) return m.status().Annotate(root->url() + "/" + key);
  // Readers rely on it (ReadTensorBox fills boxes from the tiles alone).
  for (const auto& t : m->tensors) RETURN_IF_ERROR(CheckCoverage(t).Annotate(root->url() + "/" + key));
  return m;
}

namespace {

// Where a box meets one tile: the part, and the slab of the tile's outermost dimension that holds it
// ([lo, hi) bytes into the tile), widened to whole checksum blocks ([blo, bhi)).
struct TileSlab {
  Box part;
  int64_t a = 0, b = 1;  // the slab's rows of the outermost dimension, relative to the tile
  int64_t lo = 0, hi = 0, blo = 0, bhi = 0;
  // The whole box is one run of whole blocks of this tile (a rank's own tile; half of one along the outer
  // dimension), so its bytes can go to the caller as they are stored.
  bool whole_run = false;
};

TileSlab SlabOf(const TensorRecord& t, const TileRecord& tile, const Box& box) {
  const int64_t es = t.spec.dtype.size;
  const size_t rank = t.spec.shape.size();
  TileSlab s;
  s.part = Intersection(tile.box, box);
  if (Volume(s.part.shape) == 0) return s;
  int64_t outer_stride = es;
  for (size_t d = 1; d < rank; ++d) outer_stride *= tile.box.shape[d];
  s.a = rank ? s.part.origin[0] - tile.box.origin[0] : 0;
  s.b = rank ? s.a + s.part.shape[0] : 1;
  s.lo = s.a * outer_stride;
  s.hi = std::min(tile.nbytes, s.b * outer_stride);
  s.blo = s.lo / kBlock * kBlock;
  s.bhi = std::min(tile.nbytes, (s.hi + kBlock - 1) / kBlock * kBlock);
  s.whole_run = s.part.shape == box.shape && s.lo == s.blo && s.hi == s.bhi;
  for (size_t d = 1; d < rank; ++d) s.whole_run = s.whole_run && s.part.shape[d] == tile.box.shape[d];
  return s;
}

// `bytes` are the blocks [s.blo, s.bhi) of `tile`.
Status CheckBlocks(KvStore* root, const std::string& key, const TensorRecord& t, const TileRecord& tile,
                   const TileSlab& s, std::string_view bytes) {
  for (int64_t k = s.blo; k < s.bhi; k += kBlock) {
    if (Crc32c(bytes.substr(k - s.blo, std::min(kBlock, s.bhi - k))) != tile.block_crc32c[k / kBlock]) {
      return DataLossError(root->url() + ": " + key + ": crc32c mismatch in tensor " + t.spec.name + " tile " +
                           tile.box.ToString() + " (block " + std::to_string(k / kBlock) + ")");
    }
  }
  return OkStatus();
}

Status MissingRankFile(KvStore* root, const std::string& key, const TensorRecord& t) {
  return DataLossError(root->url() + ": " + key + " is missing (tensor " + t.spec.name + ")");
}

}  // namespace

Status CheckBoxWithin(const TensorSpec& t, const Box& box) {
  bool ok = box.origin.size() == t.shape.size() && box.shape.size() == t.shape.size();
  for (size_t d = 0; ok && d < box.origin.size(); ++d) {
    ok = box.origin[d] >= 0 && box.shape[d] >= 0 && box.origin[d] + box.shape[d] <= t.shape[d];
  }
  if (ok) return OkStatus();
  return OutOfRangeError("box " + box.ToString() + " is not within tensor " + t.name + " of shape " +
                         nlohmann::json(t.shape).dump());
}

Result<std::string> ReadTensorBox(KvStore* root, const std::string& step_dir, const Manifest&, const TensorRecord& t,
                                  const Box& box) {
  RETURN_IF_ERROR(CheckBoxWithin(t.spec, box));
  const int64_t es = t.spec.dtype.size;
  const size_t rank = t.spec.shape.size();
  const size_t n = static_cast<size_t>(Volume(box.shape) * es);
  // Not zero-filled: the tiles cover the tensor exactly once (checked when the step was saved), so every
  // byte of the box is written below. (libstdc++ 12 passes the capacity to the callback, hence `n`.)
  std::string out;
  out.resize_and_overwrite(n, [n](char*, size_t) { return n; });
  for (const TileRecord& tile : t.tiles) {
    const TileSlab s = SlabOf(t, tile, box);
    if (Volume(s.part.shape) == 0) continue;
    const std::string key = step_dir + "/" + RankFile(tile.rank);
    if (s.whole_run) {  // straight into the result, no copy
      ASSIGN_OR_RETURN(bool found, root->ReadInto(key, ByteRange::Span(tile.offset + s.lo, tile.offset + s.hi), &out));
      if (!found) return MissingRankFile(root, key, t);
      RETURN_IF_ERROR(CheckBlocks(root, key, t, tile, s, out));
      return out;
    }
    thread_local std::string slab;
    ASSIGN_OR_RETURN(bool found, root->ReadInto(key, ByteRange::Span(tile.offset + s.blo, tile.offset + s.bhi), &slab));
    if (!found) return MissingRankFile(root, key, t);
    RETURN_IF_ERROR(CheckBlocks(root, key, t, tile, s, slab));
    std::vector<int64_t> slab_shape = tile.box.shape;
    if (rank) slab_shape[0] = s.b - s.a;
    std::vector<int64_t> src_origin(rank), dst_origin(rank);
    for (size_t d = 0; d < rank; ++d) {
      src_origin[d] = s.part.origin[d] - tile.box.origin[d] - (d == 0 ? s.a : 0);
      dst_origin[d] = s.part.origin[d] - box.origin[d];
    }
    CopyBox(slab.data() + (s.lo - s.blo), slab_shape, src_origin, out.data(), box.shape, dst_origin, s.part.shape, es);
  }
  return out;
}

Result<LoadedBox> LoadTensorBox(KvStore* root, const std::string& step_dir, const Manifest& m, const TensorRecord& t,
                                const Box& box) {
  RETURN_IF_ERROR(CheckBoxWithin(t.spec, box));
  for (const TileRecord& tile : t.tiles) {
    const TileSlab s = SlabOf(t, tile, box);
    if (Volume(s.part.shape) == 0) continue;
    if (!s.whole_run || s.hi - s.lo < kMinMappedBytes) break;
    const std::string key = step_dir + "/" + RankFile(tile.rank);
    ASSIGN_OR_RETURN(auto mapped, root->Map(key, ByteRange::Span(tile.offset + s.lo, tile.offset + s.hi)));
    if (!mapped) break;  // a store that cannot map, or a missing file (the read below names it)
    RETURN_IF_ERROR(CheckBlocks(root, key, t, tile, s, std::string_view(mapped->data(), mapped->size())));
    return LoadedBox(std::move(mapped));
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadTensorBox(root, step_dir, m, t, box));
  return LoadedBox(std::move(bytes));
}

Result<std::vector<std::string>> VerifyCheckpoint(KvStore* root, const std::string& step_dir) {
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, step_dir));
  std::vector<std::string> problems;
  std::mutex mu;
  std::vector<std::pair<const TensorRecord*, const TileRecord*>> all;
  for (const auto& t : m.tensors)
    for (const auto& tile : t.tiles) all.emplace_back(&t, &tile);
  tbb::parallel_for(size_t{0}, all.size(), [&](size_t i) {
    const auto& [t, tile] = all[i];
    const std::string key = step_dir + "/" + RankFile(tile->rank);
    auto r = root->Read(key, ByteRange::Span(tile->offset, tile->offset + tile->nbytes));
    std::string p;
    if (!r.ok()) p = r.status().message();
    else if (r->missing) p = root->url() + ": " + key + " is missing";
    else if (Crc32c(r->value) != tile->crc32c) {
      p = root->url() + ": " + key + ": crc32c mismatch in tensor " + t->spec.name + " tile " + tile->box.ToString();
    }
    if (!p.empty()) {
      std::lock_guard lock(mu);
      problems.push_back(p + " (tensor " + t->spec.name + ")");
    }
  });
  std::sort(problems.begin(), problems.end());
  return problems;
}

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
  return SaveCheckpoint(dst_root, m.step, mesh, specs,
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

// ---- safetensors ----

namespace {

const std::pair<const char*, const char*> kSafetensorsTypes[] = {
    {"F64", "float64"}, {"F32", "float32"}, {"F16", "float16"}, {"BF16", "bfloat16"}, {"I64", "int64"},
    {"I32", "int32"},   {"I16", "int16"},   {"I8", "int8"},     {"U64", "uint64"},    {"U32", "uint32"},
    {"U16", "uint16"},  {"U8", "uint8"},    {"BOOL", "bool"}};

struct SafetensorsFile {
  std::unique_ptr<KvStore> dir;
  std::string key;
  int64_t data_start = 0;
  struct Entry {
    TensorSpec spec;
    int64_t begin = 0, end = 0;
  };
  std::vector<Entry> entries;
  nlohmann::json metadata;
};

Result<SafetensorsFile> OpenSafetensors(const std::string& path) {
  SafetensorsFile f;
  size_t slash = path.rfind('/');
  f.dir = NewFileKvStore(slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash));
  f.key = slash == std::string::npos ? path : path.substr(slash + 1);
  ASSIGN_OR_RETURN(ReadResult head, f.dir->Read(f.key, ByteRange::Span(0, 8)));
  if (head.missing) return NotFoundError("no file " + path);
  uint64_t n;
  std::memcpy(&n, head.value.data(), 8);
  if (n > (100u << 20)) return InvalidArgumentError(path + ": safetensors header of " + std::to_string(n) + " bytes is implausible");
  ASSIGN_OR_RETURN(ReadResult hj, f.dir->Read(f.key, ByteRange::Span(8, 8 + static_cast<int64_t>(n))));
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(hj.value, path));
  f.data_start = 8 + static_cast<int64_t>(n);
  try {
    for (const auto& [name, t] : j.items()) {
      if (name == "__metadata__") {
        f.metadata = t;
        continue;
      }
      SafetensorsFile::Entry e;
      e.spec.name = name;
      std::string dt = t.at("dtype").get<std::string>();
      std::string ours;
      for (const auto& [s, o] : kSafetensorsTypes)
        if (dt == s) ours = o;
      if (ours.empty()) return UnimplementedError(path + ": tensor " + name + " has unsupported dtype " + dt);
      e.spec.dtype = DataTypeFromName(ours).value();
      ASSIGN_OR_RETURN(e.spec.shape, IntList(t.at("shape"), "shape"));
      ASSIGN_OR_RETURN(auto off, IntList(t.at("data_offsets"), "data_offsets"));
      if (off.size() != 2 || off[1] - off[0] != Volume(e.spec.shape) * e.spec.dtype.size) {
        return InvalidArgumentError(path + ": tensor " + name + " has data_offsets that do not match its shape");
      }
      e.begin = off[0];
      e.end = off[1];
      f.entries.push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(path + ": malformed safetensors header: " + e.what());
  }
  return f;
}

}  // namespace

Status ImportSafetensors(const std::string& path, KvStore* root, int64_t step, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, const SaveOptions& options) {
  ASSIGN_OR_RETURN(SafetensorsFile f, OpenSafetensors(path));
  std::vector<TensorSpec> specs;
  std::map<std::string, const SafetensorsFile::Entry*> by_name;
  for (auto& e : f.entries) {
    e.spec.partition = partition ? partition(e.spec) : PartitionSpec{};
    specs.push_back(e.spec);
    by_name[e.spec.name] = &e;
  }
  SaveOptions o = options;
  if (!f.metadata.is_null()) o.metadata["safetensors_metadata"] = f.metadata;
  return SaveCheckpoint(root, step, mesh, specs,
                        [&](int64_t, const TensorSpec& t, const Box& box) -> Result<std::string> {
                          // Read the slab of outer rows holding the box, then cut the box out of it.
                          const auto* e = by_name.at(t.name);
                          const size_t rank = t.shape.size();
                          int64_t outer = t.dtype.size;
                          for (size_t d = 1; d < rank; ++d) outer *= t.shape[d];
                          const int64_t a = rank ? box.origin[0] : 0, b = rank ? a + box.shape[0] : 1;
                          ASSIGN_OR_RETURN(ReadResult r, f.dir->Read(f.key, ByteRange::Span(f.data_start + e->begin + a * outer,
                                                                                              f.data_start + e->begin + b * outer)));
                          std::vector<int64_t> slab = t.shape, src(rank), dst(rank, 0);
                          if (rank) slab[0] = b - a;
                          for (size_t d = 0; d < rank; ++d) src[d] = d == 0 ? 0 : box.origin[d];
                          std::string out(Volume(box.shape) * t.dtype.size, '\0');
                          CopyBox(r.value.data(), slab, src, out.data(), box.shape, dst, box.shape, t.dtype.size);
                          return out;
                        },
                        o);
}

Status ExportSafetensors(KvStore* root, const std::string& step, const std::string& path) {
  std::string step_dir = step;
  if (step_dir.empty()) {
    ASSIGN_OR_RETURN(step_dir, LatestStep(root));
  }
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, step_dir));
  std::vector<const TensorRecord*> order;
  for (const auto& t : m.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->spec.name < b->spec.name; });
  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const auto* t : order) {
    std::string dt;
    for (const auto& [s, o] : kSafetensorsTypes)
      if (t->spec.dtype.name == o) dt = s;
    int64_t n = Volume(t->spec.shape) * t->spec.dtype.size;
    header[t->spec.name] = {{"dtype", dt}, {"shape", t->spec.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  header["__metadata__"] = {{"format", "pt"}, {"jigsaw_step", std::to_string(m.step)}};
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  // Tensor by tensor, in slabs of outer rows of at most 64 MiB: never a whole tensor in memory.
  for (const auto* t : order) {
    const size_t rank = t->spec.shape.size();
    int64_t row = t->spec.dtype.size;
    for (size_t d = 1; d < rank; ++d) row *= t->spec.shape[d];
    const int64_t rows = rank ? t->spec.shape[0] : 1;
    const int64_t per = std::max<int64_t>(1, (64 << 20) / std::max<int64_t>(row, 1));
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
      Box box{std::vector<int64_t>(rank, 0), t->spec.shape};
      if (rank) {
        box.origin[0] = r0;
        box.shape[0] = std::min(per, rows - r0);
      }
      ASSIGN_OR_RETURN(std::string bytes, ReadTensorBox(root, step_dir, m, *t, box));
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
  }
  out.close();
  if (!out) return IoError("cannot write " + tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoToStatus(errno, "rename to " + path);
  return OkStatus();
}

}  // namespace jigsaw
