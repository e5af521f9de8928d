#include "storage/checkpoint/async_save.h"

#include <map>
#include <thread>

#include "storage/checkpoint/format.h"
#include "storage/checkpoint/save_phases.h"

namespace jigsaw {

using namespace checkpoint_internal;

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

}  // namespace jigsaw
