#include "storage/checkpoint/save.h"

#include <tbb/parallel_for.h>

#include <charconv>
#include <climits>
#include <mutex>
#include <set>

#include "storage/checkpoint/format.h"
#include "storage/checkpoint/save_phases.h"
#include "storage/codec/codec.h"
#include "storage/codec/crc32c.h"

namespace jigsaw {
namespace checkpoint_internal {
namespace {

// 1000 for "step-00001000"; a larger number than any step for a name that is not a step's.
int64_t StepNumber(const std::string& dir) {
  int64_t n = 0;
  const char* begin = dir.data() + 5;
  auto [end, ec] = std::from_chars(begin, dir.data() + dir.size(), n);
  if (!dir.starts_with("step-") || ec != std::errc() || end != dir.data() + dir.size()) return INT64_MAX;
  return n;
}

// Names the first thing rank `r`'s save plan disagrees on with rank 0's.
std::string DescribePlanDifference(size_t r, const nlohmann::json& theirs, const nlohmann::json& ours) {
  const std::string who = "rank " + std::to_string(r) + " saves ";
  if (theirs["step"] != ours["step"])
    return who + "step " + theirs["step"].dump() + ", rank 0 step " + ours["step"].dump();
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

}  // namespace

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
  return nlohmann::json{{"error", error.ok() ? "" : error.message()},
                        {"code", static_cast<int>(error.code())},
                        {"tiles", std::move(tiles)}}
      .dump();
}

std::string PlanMessage(int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors, Communicator* comm) {
  // Every rank checks its arguments and sends rank 0 what it was asked to save: ranks that disagree on the
  // step, the mesh or the tensors (a name, shape, dtype, partition or their order) would make a manifest
  // that fits none of them.
  Status valid = [&]() -> Status {
    if (step < 0) return InvalidArgumentError("step " + std::to_string(step) + " is negative");
    if (comm->size() > 1 && comm->size() != mesh.size()) {
      return InvalidArgumentError("mesh " + mesh.ToString() + " has " + std::to_string(mesh.size()) + " ranks but " +
                                  std::to_string(comm->size()) + " processes save it");
    }
    // Every save path (import, the trainer, C, Python) under the same rules: a name is a store key (never ""
    // or "../x") and appears once; a shape has no negative extent and its bytes do not overflow.
    std::set<std::string> names;
    for (const auto& t : tensors) {
      if (Status key = ValidateKey(t.name); !key.ok())
        return InvalidArgumentError("tensor name \"" + t.name + "\" cannot be a tensor's name: " + key.message());
      if (!names.insert(t.name).second) return InvalidArgumentError("tensor " + t.name + " is given twice");
      int64_t bytes = t.dtype.size;
      for (int64_t d : t.shape) {
        if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes))
          return InvalidArgumentError("tensor " + t.name + " has an impossible shape [" + JoinShape(t.shape) + "]");
      }
    }
    for (const auto& t : tensors)
      for (int64_t r = 0; r < mesh.size(); ++r) RETURN_IF_ERROR(TileOf(t, mesh, r).status());
    return OkStatus();
  }();
  nlohmann::json plan = {{"step", step}, {"mesh", mesh.ToString()}, {"tensors", nlohmann::json::array()}};
  for (const auto& t : tensors) {
    plan["tensors"].push_back({t.name, t.dtype.name, t.shape, PartitionSpecToJson(t.partition)});
  }
  return nlohmann::json{{"error", valid.ok() ? "" : valid.message()}, {"plan", plan}}.dump();
}

Status CheckPlans(const std::vector<std::string>& plans) {
  const nlohmann::json ours = nlohmann::json::parse(plans[0])["plan"];
  for (size_t r = 0; r < plans.size(); ++r) {
    nlohmann::json j = nlohmann::json::parse(plans[r]);
    const std::string who = plans.size() > 1 ? "rank " + std::to_string(r) + ": " : "";
    if (!j["error"].get<std::string>().empty()) return InvalidArgumentError(who + j["error"].get<std::string>());
    if (j["plan"] != ours) return InvalidArgumentError(DescribePlanDifference(r, j["plan"], ours));
  }
  return OkStatus();
}

namespace {

// Committed: a step with a manifest, up to the one LATEST names. A manifest past LATEST is a commit that
// stopped before LATEST moved: unfinished, like a step without one (its save may be retried).
int64_t LatestNumber(KvStore* root) {
  Result<std::string> l = LatestStep(root);
  return l.ok() ? StepNumber(*l) : -1;
}

}  // namespace

Status ClearStep(KvStore* root, int64_t step) {
  const std::string dir = StepDirectory(step);
  ASSIGN_OR_RETURN(auto keys, root->List(dir + "/"));
  for (const auto& e : keys) {
    if (e.key == dir + "/manifest.json" && step <= LatestNumber(root)) {
      return FailedPreconditionError(root->url() + ": step " + dir + " is already committed");
    }
  }
  for (const auto& e : keys) RETURN_IF_ERROR(root->Delete(e.key));
  return OkStatus();
}

Status ClearUnfinished(KvStore* root, const std::set<std::string>& keep) {
  ASSIGN_OR_RETURN(auto keys, root->List("step-"));
  const int64_t latest = LatestNumber(root);
  std::set<std::string> committed;
  for (const auto& e : keys) {
    const std::string dir = e.key.substr(0, e.key.find('/'));
    if (e.key.ends_with("/manifest.json") && StepNumber(dir) <= latest) committed.insert(dir);
  }
  for (const auto& e : keys) {
    const std::string dir = e.key.substr(0, e.key.find('/'));
    if (!committed.count(dir) && !keep.count(dir)) RETURN_IF_ERROR(root->Delete(e.key));
  }
  return OkStatus();
}

Status PrepareSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                   Communicator* comm) {
  // No rank leaves before the verdict, so none waits on a rank that left.
  ASSIGN_OR_RETURN(auto plans, comm->Gather(PlanMessage(step, mesh, tensors, comm)));
  Status prepared;
  if (comm->rank() == 0) {
    prepared = CheckPlans(plans);
    if (prepared.ok()) prepared = ClearStep(root, step);
    if (prepared.ok()) prepared = ClearUnfinished(root, {StepDirectory(step)});
  }
  return Agree(comm, prepared);
}

// Save, phase 2 (this process alone): the files of ranks `mine`. Returns what rank 0 needs to commit (the
// tile records, or the error), for CommitSave.
std::string WriteRankFiles(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                           const TileSource& source, const SaveOptions& options, const std::vector<int64_t>& mine) {
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
    std::string scratch;
    Status s = [&]() -> Status {
      for (size_t ti = 0; ti < tensors.size(); ++ti) {
        const TensorSpec& t = tensors[ti];
        if (!Owns(t, mesh, rank)) continue;
        Box box = TileOf(t, mesh, rank).value();
        ASSIGN_OR_RETURN(std::string_view bytes, source(rank, ti, t, box, &scratch));
        if (static_cast<int64_t>(bytes.size()) != Volume(box.shape) * t.dtype.size) {
          return InvalidArgumentError("tensor " + t.name + ": rank " + std::to_string(rank) + " supplied " +
                                      std::to_string(bytes.size()) + " bytes for tile " + box.ToString());
        }
        if (!file) {
          ASSIGN_OR_RETURN(
              file, root->OpenWriter(dir + "/" + RankFile(rank), {.sync = options.sync, .direct = options.direct}));
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

Result<Manifest> ManifestFromPayloads(int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                                      const SaveOptions& options, const std::vector<std::string>& payloads) {
  Manifest m;
  m.step = step;
  m.mesh = mesh;
  m.metadata = options.metadata;
  for (const auto& t : tensors) m.tensors.push_back({t, {}});
  for (const auto& text : payloads) {
    nlohmann::json j = nlohmann::json::parse(text);
    if (!j["error"].get<std::string>().empty()) {
      return Status(static_cast<StatusCode>(j.value("code", static_cast<int>(StatusCode::kIo))),
                    j["error"].get<std::string>());
    }
    for (const auto& tile : j["tiles"]) m.tensors[tile["tensor"].get<size_t>()].tiles.push_back(TileFromJson(tile));
  }
  for (auto& t : m.tensors) {
    std::sort(t.tiles.begin(), t.tiles.end(), [](const TileRecord& a, const TileRecord& b) { return a.rank < b.rank; });
    Status covered = CheckCoverage(t);
    if (!covered.ok()) return InternalError(covered.message());
  }
  return m;
}

Status WriteManifestAndLatest(KvStore* root, const Manifest& m, const SaveOptions& options) {
  const std::string dir = StepDirectory(m.step);
  RETURN_IF_ERROR(root->Write(dir + "/manifest.json", ManifestText(m), {.sync = options.sync}));
  return root->Write("LATEST", dir + "\n", {.sync = options.sync});
}

Status CommitSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                  const SaveOptions& options, Communicator* comm, const std::string& payload) {
  ASSIGN_OR_RETURN(auto payloads, comm->Gather(payload));
  Status committed;
  if (comm->rank() == 0) {
    Result<Manifest> m = ManifestFromPayloads(step, mesh, tensors, options, payloads);
    committed = m.ok() ? WriteManifestAndLatest(root, *m, options) : m.status();
  }
  return Agree(comm, committed);
}

}  // namespace checkpoint_internal

using namespace checkpoint_internal;

Status SaveCheckpoint(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                      const TileProvider& provider, const SaveOptions& options, Communicator* comm) {
  std::unique_ptr<Communicator> local;
  if (!comm) {
    local = NewLocalCommunicator();
    comm = local.get();
  }
  RETURN_IF_ERROR(PrepareSave(root, step, mesh, tensors, comm));
  const TileSource source = [&](int64_t rank, size_t, const TensorSpec& t, const Box& box,
                                std::string* scratch) -> Result<std::string_view> {
    ASSIGN_OR_RETURN(*scratch, provider(rank, t, box));
    return std::string_view(*scratch);
  };
  return CommitSave(root, step, mesh, tensors, options, comm,
                    WriteRankFiles(root, step, mesh, tensors, source, options, RanksOf(mesh, comm)));
}

TileProvider TilesFromMemory(std::vector<TensorSpec> tensors, std::vector<TensorBuffer> buffers, bool whole) {
  return [tensors = std::move(tensors), buffers = std::move(buffers), whole](int64_t rank, const TensorSpec& t,
                                                                             const Box& box) -> Result<std::string> {
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

}  // namespace jigsaw
