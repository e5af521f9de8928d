#include "storage/checkpoint/async_save.h"

#include <tbb/parallel_for.h>

#include <cstring>
#include <future>
#include <map>

#include "storage/checkpoint/format.h"
#include "storage/checkpoint/save_phases.h"

namespace jigsaw {

using namespace checkpoint_internal;

struct AsyncCheckpointSaver::Save {
  KvStore* root = nullptr;
  int64_t step = 0;
  Mesh mesh;
  std::vector<TensorSpec> tensors;
  SaveOptions options;
  Communicator* comm = nullptr;
  Status prepared;  // phase 1's verdict (agreed); when not ok there is nothing to write or commit
  // The copies the writer reads: tile (rank, tensor index) -> bytes.
  std::map<std::pair<int64_t, size_t>, std::string> tiles;
  std::vector<std::string> buffers;  // Start from memory: buffers[i] holds the tile of tensors[i]
  std::shared_future<void> copied;   // copy_later: ready when the background thread took the copy
  std::thread worker;                // phase 2
  std::string payload;               // what it wrote, for phase 3
};

namespace {

nlohmann::json StatusToJson(const Status& s) { return {s.ok() ? "" : s.message(), static_cast<int>(s.code())}; }
Status StatusFromJson(const nlohmann::json& j) {
  if (j[0].get<std::string>().empty()) return OkStatus();
  return Status(static_cast<StatusCode>(j[1].get<int>()), j[0].get<std::string>());
}

// The pieces of a copy of `tiles` into `buffers` (sized here), at most 1 MiB each, so that all cores share
// it whatever the tile sizes.
struct Piece {
  char* dst;
  const char* src;
  size_t n;
};

Status CopyTiles(const std::vector<TensorSpec>& tensors, const Mesh& mesh, int64_t rank,
                 const std::vector<TensorBuffer>& tiles, std::vector<std::string>* buffers) {
  buffers->resize(tensors.size());
  std::vector<Piece> pieces;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& t = tensors[i];
    if (!Owns(t, mesh, rank)) {
      (*buffers)[i].clear();
      continue;
    }
    ASSIGN_OR_RETURN(Box box, TileOf(t, mesh, rank));
    if (tiles[i].shape != box.shape) {
      return InvalidArgumentError("tensor " + t.name + ": rank " + std::to_string(rank) + "'s tile " + box.ToString() +
                                  " is " + nlohmann::json(box.shape).dump() + " but the buffer given is " +
                                  nlohmann::json(tiles[i].shape).dump());
    }
    const size_t n = static_cast<size_t>(box.num_elements() * t.dtype.size);
    std::string& b = (*buffers)[i];
    if (b.size() != n) b.resize_and_overwrite(n, [n](char*, size_t) { return n; });  // every byte copied below
    constexpr size_t kPiece = 1 << 20;
    for (size_t o = 0; o < n; o += kPiece) pieces.push_back({b.data() + o, tiles[i].data + o, std::min(kPiece, n - o)});
  }
  tbb::parallel_for(size_t{0}, pieces.size(),
                    [&](size_t k) { std::memcpy(pieces[k].dst, pieces[k].src, pieces[k].n); });
  return OkStatus();
}

}  // namespace

AsyncCheckpointSaver::AsyncCheckpointSaver() : local_(NewLocalCommunicator()) {}

AsyncCheckpointSaver::~AsyncCheckpointSaver() {
  if (commit_comm_ == local_.get() || (writing_ && writing_->comm == local_.get())) {
    (void)Wait();  // alone: committing needs nobody else
    return;
  }
  // A commit is collective: the other ranks may not be committing now. Finish writing, do not commit
  // (the step stays unfinished; LATEST keeps the previous one; the next save clears it).
  if (committer_.joinable()) committer_.join();
  if (writing_ && writing_->worker.joinable()) writing_->worker.join();
}

bool AsyncCheckpointSaver::in_flight() const { return writing_ != nullptr || committing_; }

void AsyncCheckpointSaver::TilesCopied() {
  if (writing_ && writing_->copied.valid()) writing_->copied.wait();
}

Status AsyncCheckpointSaver::Advance(Save* next) {
  if (!writing_ && !committing_ && !next) return OkStatus();
  Communicator* comm = next ? next->comm : writing_ ? writing_->comm : commit_comm_;
  // Every rank sends what its writes of the save in flight gave (tile records or an error) and what it is
  // asked to save next; rank 0 answers with the verdict of what finished and the agreement on the next.
  std::unique_ptr<Save> done = std::move(writing_);
  if (done && done->worker.joinable()) done->worker.join();
  if (done) pool_ = std::move(done->buffers);
  const bool gather_records = done && done->prepared.ok();
  nlohmann::json hello = {{"payload", gather_records ? done->payload : ""},
                          {"plan", next ? PlanMessage(next->step, next->mesh, next->tensors, comm) : ""}};
  ASSIGN_OR_RETURN(auto messages, comm->Gather(hello.dump()));
  nlohmann::json answer = {
      {"verdict", StatusToJson(OkStatus())}, {"prepared", StatusToJson(OkStatus())}, {"committing", ""}};
  if (comm->rank() == 0) {
    Status verdict;
    if (committing_ && committer_.joinable()) committer_.join();
    if (committing_) verdict = commit_status_;
    if (done && !done->prepared.ok() && verdict.ok()) verdict = done->prepared;  // agreed when it started
    if (gather_records) {
      std::vector<std::string> payloads;
      for (const auto& m : messages) payloads.push_back(nlohmann::json::parse(m)["payload"].get<std::string>());
      Result<Manifest> m = ManifestFromPayloads(done->step, done->mesh, done->tensors, done->options, payloads);
      if (!m.ok()) {
        if (verdict.ok()) verdict = m.status();
      } else {
        // The manifest and LATEST are written while training goes on; the next call reports how it went.
        // Then it clears what unfinished saves left, but for this one and the next (being written).
        answer["committing"] = StepDirectory(done->step);
        std::set<std::string> keep = {StepDirectory(done->step)};
        if (next) keep.insert(StepDirectory(next->step));
        committer_ = std::thread([this, root = done->root, options = done->options, m = std::move(*m), keep] {
          commit_status_ = WriteManifestAndLatest(root, m, options);
          // Housekeeping, not part of the save: what it fails to clear, the next save clears.
          if (commit_status_.ok()) (void)ClearUnfinished(root, keep);
        });
      }
    }
    answer["verdict"] = StatusToJson(verdict);
    if (next) {
      std::vector<std::string> plans;
      for (const auto& m : messages) plans.push_back(nlohmann::json::parse(m)["plan"].get<std::string>());
      Status prepared = CheckPlans(plans);
      if (prepared.ok()) prepared = ClearStep(next->root, next->step);
      answer["prepared"] = StatusToJson(prepared);
    }
  }
  std::string text = answer.dump();
  RETURN_IF_ERROR(comm->Broadcast(&text));
  answer = nlohmann::json::parse(text);
  committing_ = !answer["committing"].get<std::string>().empty();
  commit_comm_ = comm;
  if (next) next->prepared = StatusFromJson(answer["prepared"]);
  return StatusFromJson(answer["verdict"]);
}

std::unique_ptr<AsyncCheckpointSaver::Save> AsyncCheckpointSaver::NewSave(KvStore* root, int64_t step, const Mesh& mesh,
                                                                          const std::vector<TensorSpec>& tensors,
                                                                          const SaveOptions& options,
                                                                          Communicator* comm) {
  auto save = std::make_unique<Save>();
  save->root = root;
  save->step = step;
  save->mesh = mesh;
  save->tensors = tensors;
  save->options = options;
  save->comm = comm ? comm : local_.get();
  return save;
}

Status AsyncCheckpointSaver::Wait() {
  Status first = Advance(nullptr);  // reports the commit in flight, starts the one of the save in flight
  Status last = Advance(nullptr);   // reports that one
  return first.ok() ? last : first;
}

Status AsyncCheckpointSaver::Start(KvStore* root, int64_t step, const Mesh& mesh,
                                   const std::vector<TensorSpec>& tensors, const TileProvider& provider,
                                   const SaveOptions& options, Communicator* comm) {
  std::unique_ptr<Save> save = NewSave(root, step, mesh, tensors, options, comm);
  Status previous = Advance(save.get());
  if (save->prepared.ok()) {
    // Copy this process's tiles now; the background writer reads only these copies. A failed copy is
    // committed as a failure, so that no rank waits forever on this one.
    const std::vector<int64_t> mine = RanksOf(mesh, save->comm);
    Status copied = [&]() -> Status {
      for (size_t i = 0; i < tensors.size(); ++i) {
        for (int64_t r : mine) {
          if (!Owns(tensors[i], mesh, r)) continue;
          ASSIGN_OR_RETURN(Box box, TileOf(tensors[i], mesh, r));
          ASSIGN_OR_RETURN(std::string bytes, provider(r, tensors[i], box));
          save->tiles[{r, i}] = std::move(bytes);
        }
      }
      return OkStatus();
    }();
    Save* s = save.get();
    if (!copied.ok()) {
      s->payload = SavePayload(copied, nlohmann::json::array());
    } else {
      s->worker = std::thread([s, mine] {
        s->payload = WriteRankFiles(
            s->root, s->step, s->mesh, s->tensors,
            [&](int64_t rank, size_t i, const TensorSpec&, const Box&, std::string*) -> Result<std::string_view> {
              return std::string_view(s->tiles.at({rank, i}));
            },
            s->options, mine);
        s->tiles.clear();
      });
    }
  }
  writing_ = std::move(save);
  return previous;
}

Status AsyncCheckpointSaver::Start(KvStore* root, int64_t step, const Mesh& mesh,
                                   const std::vector<TensorSpec>& tensors, std::vector<TensorBuffer> tiles,
                                   const SaveOptions& options, Communicator* comm, bool copy_later) {
  std::unique_ptr<Save> save = NewSave(root, step, mesh, tensors, options, comm);
  const Status arguments = [&]() -> Status {
    if (tiles.size() != tensors.size()) {
      return InvalidArgumentError(std::to_string(tiles.size()) + " tiles given for " + std::to_string(tensors.size()) +
                                  " tensors");
    }
    if (save->comm->size() == 1 && mesh.size() != 1) {
      return InvalidArgumentError("tiles from memory are one process's own: mesh " + mesh.ToString() + " has " +
                                  std::to_string(mesh.size()) + " ranks but one process saves it");
    }
    return OkStatus();
  }();
  // Every rank takes part in the agreement, also one whose arguments are wrong: its save is committed as a
  // failure naming them, so that every rank hears of it and none waits on this one.
  Status previous = Advance(save.get());
  save->buffers = std::move(pool_);
  if (!save->prepared.ok()) {
    // every rank saw the same verdict: nothing to write
  } else if (!arguments.ok()) {
    save->payload = SavePayload(arguments, nlohmann::json::array());
  } else {
    const int64_t rank = save->comm->rank();
    Save* s = save.get();
    auto write = [s, rank] {
      s->payload =
          WriteRankFiles(s->root, s->step, s->mesh, s->tensors,
                         [&](int64_t, size_t i, const TensorSpec&, const Box&,
                             std::string*) -> Result<std::string_view> { return std::string_view(s->buffers[i]); },
                         s->options, {rank});
    };
    if (!copy_later) {
      Status copied = CopyTiles(tensors, mesh, rank, tiles, &s->buffers);
      if (!copied.ok()) {
        s->payload = SavePayload(copied, nlohmann::json::array());
      } else {
        s->worker = std::thread(write);
      }
    } else {
      auto promise = std::make_shared<std::promise<void>>();
      s->copied = promise->get_future().share();
      s->worker = std::thread([s, rank, tiles = std::move(tiles), promise, write] {
        Status copied = CopyTiles(s->tensors, s->mesh, rank, tiles, &s->buffers);
        promise->set_value();
        if (!copied.ok()) {
          s->payload = SavePayload(copied, nlohmann::json::array());
          return;
        }
        write();
      });
    }
  }
  writing_ = std::move(save);
  return previous;
}

}  // namespace jigsaw
