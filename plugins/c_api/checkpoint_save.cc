// The C API over checkpoint saves: from one process (whole tensors) or collectively under MPI (each rank its
// own tiles), blocking or asynchronous.
#include <memory>
#include <vector>

#include "plugins/c_api/c_api_internal.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/zarr/metadata.h"

using jigsaw::c_api::Guard;

struct jigsaw_checkpoint_save {
  std::unique_ptr<jigsaw::KvStore> root;
  int64_t step = 0;
  jigsaw::Mesh mesh;
  std::unique_ptr<jigsaw::Communicator> comm;  // nullptr: this process saves every rank
  std::vector<jigsaw::TensorSpec> specs;
  std::vector<jigsaw::TensorBuffer> buffers;
  jigsaw::SaveOptions options;
  jigsaw::Status failed;  // the first failed add or set_metadata: the save then fails, on every rank
  enum { kOpen, kStarted, kDone } state = kOpen;
  jigsaw::AsyncCheckpointSaver saver;  // declared last, destroyed first: it uses root and comm

  // Each process holds whole tensors unless it is one of several ranks.
  bool whole() const { return !comm || comm->size() == 1; }
};

extern "C" {

int jigsaw_checkpoint_save_open(const char* root, int64_t step, const char* mesh, const char* comm,
                                jigsaw_checkpoint_save** out, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!root || !mesh || !out) return jigsaw::InvalidArgumentError("jigsaw_checkpoint_save_open: NULL argument");
    auto save = std::make_unique<jigsaw_checkpoint_save>();
    save->step = step;
    ASSIGN_OR_RETURN(save->mesh, jigsaw::Mesh::Parse(mesh));
    const std::string how = comm ? comm : "";
    if (how == "mpi") {
      ASSIGN_OR_RETURN(save->comm, jigsaw::NewMpiCommunicator());
      if (save->comm->size() > 1 && save->comm->size() != save->mesh.size()) {  // the same verdict on every rank
        return jigsaw::InvalidArgumentError("mesh " + save->mesh.ToString() + " has " +
                                            std::to_string(save->mesh.size()) + " ranks but " +
                                            std::to_string(save->comm->size()) + " MPI processes save it");
      }
    } else if (!how.empty()) {
      return jigsaw::InvalidArgumentError("unknown communicator \"" + how + "\" (NULL, \"\" or \"mpi\")");
    }
    ASSIGN_OR_RETURN(save->root, jigsaw::OpenKvStore(root));
    *out = save.release();
    return jigsaw::OkStatus();
  });
}

}  // extern "C"

namespace {

jigsaw::Status CheckOpen(const jigsaw_checkpoint_save* s, const char* what) {
  if (!s) return jigsaw::InvalidArgumentError(std::string(what) + ": NULL save");
  if (s->state != jigsaw_checkpoint_save::kOpen) {
    return jigsaw::FailedPreconditionError(std::string(what) + ": the save was already committed or started");
  }
  return jigsaw::OkStatus();
}

jigsaw::Status AddTensor(jigsaw_checkpoint_save* s, const char* name, const char* dtype, int ndim, const int64_t* shape,
                         const char* partition, const void* data, size_t nbytes) {
  if (!name || !dtype || (ndim > 0 && !shape) || !data) return jigsaw::InvalidArgumentError("NULL argument");
  jigsaw::TensorSpec t;
  t.name = name;
  for (const auto& other : s->specs)
    if (other.name == t.name) return jigsaw::InvalidArgumentError("tensor " + t.name + " was already added");
  if (ndim < 0 || ndim > 8) return jigsaw::InvalidArgumentError("tensor " + t.name + ": ndim must be 0 to 8");
  ASSIGN_OR_RETURN(t.dtype, jigsaw::DataTypeFromName(dtype));
  t.shape.assign(shape, shape + ndim);
  if (partition && *partition) {
    ASSIGN_OR_RETURN(nlohmann::json j, jigsaw::ParseJson(partition, "partition of tensor " + t.name));
    ASSIGN_OR_RETURN(t.partition, jigsaw::ParsePartitionSpec(j));
  }
  // The tile this process holds: the whole tensor, or its rank's tile (which also checks shape and partition).
  ASSIGN_OR_RETURN(jigsaw::Box mine, jigsaw::TileOf(t, s->mesh, s->whole() ? 0 : s->comm->rank()));
  std::vector<int64_t> held = s->whole() ? t.shape : mine.shape;
  int64_t n = t.dtype.size;
  for (int64_t d : held) n *= d;
  if (nbytes != static_cast<size_t>(n)) {
    return jigsaw::InvalidArgumentError("tensor " + t.name + ": " + std::to_string(nbytes) + " bytes given, " +
                                        (s->whole() ? "the tensor " : "this rank's tile ") +
                                        nlohmann::json(held).dump() + " of " + t.dtype.name + " is " +
                                        std::to_string(n));
  }
  s->buffers.push_back({static_cast<const char*>(data), std::move(held)});
  s->specs.push_back(std::move(t));
  return jigsaw::OkStatus();
}

// Start or commit: every rank first learns whether every rank's adds went well, so that none waits on a
// rank that gave up.
jigsaw::Status BeginWrite(jigsaw_checkpoint_save* s, const char* what) {
  RETURN_IF_ERROR(CheckOpen(s, what));
  s->state = jigsaw_checkpoint_save::kDone;
  return s->comm ? jigsaw::AllOk(s->comm.get(), s->failed) : s->failed;
}

}  // namespace

extern "C" {

int jigsaw_checkpoint_save_add(jigsaw_checkpoint_save* s, const char* name, const char* dtype, int ndim,
                               const int64_t* shape, const char* partition, const void* data, size_t nbytes,
                               char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    RETURN_IF_ERROR(CheckOpen(s, "jigsaw_checkpoint_save_add"));
    jigsaw::Status st = AddTensor(s, name, dtype, ndim, shape, partition, data, nbytes);
    if (!st.ok() && s->failed.ok()) s->failed = st;
    return st;
  });
}

int jigsaw_checkpoint_save_set_metadata(jigsaw_checkpoint_save* s, const char* json, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    RETURN_IF_ERROR(CheckOpen(s, "jigsaw_checkpoint_save_set_metadata"));
    jigsaw::Status st = [&]() -> jigsaw::Status {
      ASSIGN_OR_RETURN(nlohmann::json j, jigsaw::ParseJson(json ? json : "", "checkpoint metadata"));
      if (!j.is_object()) return jigsaw::InvalidArgumentError("checkpoint metadata: not a JSON object");
      s->options.metadata = std::move(j);
      return jigsaw::OkStatus();
    }();
    if (!st.ok() && s->failed.ok()) s->failed = st;
    return st;
  });
}

int jigsaw_checkpoint_save_commit(jigsaw_checkpoint_save* s, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    RETURN_IF_ERROR(BeginWrite(s, "jigsaw_checkpoint_save_commit"));
    return jigsaw::SaveCheckpoint(s->root.get(), s->step, s->mesh, s->specs,
                                  jigsaw::TilesFromMemory(s->specs, s->buffers, s->whole()), s->options, s->comm.get());
  });
}

int jigsaw_checkpoint_save_start(jigsaw_checkpoint_save* s, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    RETURN_IF_ERROR(BeginWrite(s, "jigsaw_checkpoint_save_start"));
    s->state = jigsaw_checkpoint_save::kStarted;
    jigsaw::Status previous =
        s->saver.Start(s->root.get(), s->step, s->mesh, s->specs,
                       jigsaw::TilesFromMemory(s->specs, s->buffers, s->whole()), s->options, s->comm.get());
    return previous;  // a fresh saver has none: this save's own problems come from wait
  });
}

int jigsaw_checkpoint_save_wait(jigsaw_checkpoint_save* s, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!s || s->state != jigsaw_checkpoint_save::kStarted) {
      return jigsaw::FailedPreconditionError("jigsaw_checkpoint_save_wait: no save was started on this handle");
    }
    s->state = jigsaw_checkpoint_save::kDone;
    return s->saver.Wait();
  });
}

void jigsaw_checkpoint_save_close(jigsaw_checkpoint_save* s) { delete s; }

}  // extern "C"
