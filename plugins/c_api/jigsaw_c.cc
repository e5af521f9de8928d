// The C API over the loader and checkpoints: every entry point catches everything and returns a code plus a message.
#include "plugins/c_api/jigsaw_c.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include "pipeline/loader/loader.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/zarr/metadata.h"

struct jigsaw_checkpoint {
  std::unique_ptr<jigsaw::KvStore> root;
  std::string step_dir;
  jigsaw::Manifest manifest;
  std::string metadata;  // manifest.metadata as text
};

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

struct jigsaw_loader {
  std::unique_ptr<jigsaw::Loader> loader;
  std::shared_ptr<jigsaw::Batch> current;  // the loader-owned buffer handed out last
};

namespace {

int Report(const jigsaw::Status& s, char** errptr) {
  if (s.ok()) return 0;
  if (errptr) *errptr = strdup(s.message().c_str());
  return static_cast<int>(s.code());
}

template <typename Fn>
int Guard(char** errptr, Fn fn) {
  try {
    return Report(fn(), errptr);
  } catch (const std::exception& e) {
    return Report(jigsaw::InternalError(std::string("unexpected exception: ") + e.what()), errptr);
  } catch (...) {
    return Report(jigsaw::InternalError("unexpected exception"), errptr);
  }
}

}  // namespace

extern "C" {

void jigsaw_loader_options_init(jigsaw_loader_options* o) {
  std::memset(o, 0, sizeof(*o));
  o->dp_size = 1;
  o->batch_size = 1;
  o->lead_steps = 1;
  o->dtype = "float32";
  o->shuffle = 1;
  o->prefetch = 4;
}

int jigsaw_loader_open(const char* url, const jigsaw_loader_options* options, jigsaw_loader** out, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!url || !options || !out) return jigsaw::InvalidArgumentError("jigsaw_loader_open: NULL argument");
    jigsaw::LoaderOptions o;
    o.rank = options->rank;
    o.dp_rank = options->dp_rank;
    o.dp_size = options->dp_size;
    o.batch_size = options->batch_size;
    o.lead_steps = options->lead_steps;
    o.normalize = options->normalize != 0;
    ASSIGN_OR_RETURN(o.dtype, jigsaw::ParseBatchType(options->dtype ? options->dtype : "float32"));
    o.seed = options->seed;
    o.shuffle = options->shuffle != 0;
    o.start = options->start ? options->start : "";
    o.end = options->end ? options->end : "";
    o.prefetch = options->prefetch;
    o.threads = options->threads;
    ASSIGN_OR_RETURN(auto loader, jigsaw::Loader::Open(url, o));
    *out = new jigsaw_loader{std::move(loader), nullptr};
    return jigsaw::OkStatus();
  });
}

void jigsaw_loader_shape(const jigsaw_loader* l, int64_t shape[5]) {
  if (!l || !shape) return;
  auto s = l->loader->batch_shape();
  for (int i = 0; i < 5; ++i) shape[i] = s[i];
}

size_t jigsaw_loader_batch_bytes(const jigsaw_loader* l) { return l ? l->loader->batch_bytes() : 0; }
int64_t jigsaw_loader_batches_per_epoch(const jigsaw_loader* l) { return l ? l->loader->batches_per_epoch() : 0; }

int jigsaw_loader_next(jigsaw_loader* l, void* dst, size_t dst_bytes, const void** data, int64_t* times, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!l) return jigsaw::InvalidArgumentError("jigsaw_loader_next: NULL loader");
    const size_t n = l->loader->batch_bytes();
    if (dst && dst_bytes < n) {  // checked before taking a batch, so that none is lost
      return jigsaw::InvalidArgumentError("jigsaw_loader_next: destination holds " + std::to_string(dst_bytes) +
                                          " bytes, the batch needs " + std::to_string(n));
    }
    ASSIGN_OR_RETURN(l->current, l->loader->Next());
    if (dst) std::memcpy(dst, l->current->data(), n);
    if (data) *data = dst ? dst : l->current->data();
    if (times) std::memcpy(times, l->current->times().data(), l->current->times().size() * sizeof(int64_t));
    return jigsaw::OkStatus();
  });
}

void jigsaw_loader_state(const jigsaw_loader* l, int64_t* epoch, int64_t* batch) {
  if (!l) return;
  auto s = l->loader->state();
  if (epoch) *epoch = s.epoch;
  if (batch) *batch = s.batch;
}

int jigsaw_loader_restore(jigsaw_loader* l, int64_t epoch, int64_t batch, char** errptr) {
  return Guard(errptr, [&] {
    return l ? l->loader->Restore({epoch, batch}) : jigsaw::InvalidArgumentError("jigsaw_loader_restore: NULL loader");
  });
}

void jigsaw_loader_get_stats(const jigsaw_loader* l, jigsaw_loader_stats* out) {
  if (!l || !out) return;
  auto s = l->loader->stats();
  *out = {s.batches, s.bytes_read, s.bytes_decoded, s.bytes_delivered, s.seconds, s.consumer_wait_seconds,
          s.read_amplification()};
}

void jigsaw_loader_close(jigsaw_loader* l) { delete l; }

int jigsaw_checkpoint_open(const char* path, jigsaw_checkpoint** out, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!path || !out) return jigsaw::InvalidArgumentError("jigsaw_checkpoint_open: NULL argument");
    ASSIGN_OR_RETURN(auto opened, jigsaw::OpenCheckpointStep(path));
    ASSIGN_OR_RETURN(jigsaw::Manifest m, jigsaw::ReadManifest(opened.first.get(), opened.second));
    std::string metadata = m.metadata.dump();
    *out = new jigsaw_checkpoint{std::move(opened.first), opened.second, std::move(m), std::move(metadata)};
    return jigsaw::OkStatus();
  });
}

int64_t jigsaw_checkpoint_step(const jigsaw_checkpoint* c) { return c ? c->manifest.step : -1; }
int64_t jigsaw_checkpoint_num_tensors(const jigsaw_checkpoint* c) {
  return c ? static_cast<int64_t>(c->manifest.tensors.size()) : 0;
}
const char* jigsaw_checkpoint_metadata(const jigsaw_checkpoint* c) { return c ? c->metadata.c_str() : nullptr; }

int jigsaw_checkpoint_tensor(const jigsaw_checkpoint* c, int64_t index, const char** name, const char** dtype, int* ndim,
                             int64_t shape[8], char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!c) return jigsaw::InvalidArgumentError("jigsaw_checkpoint_tensor: NULL checkpoint");
    if (index < 0 || index >= jigsaw_checkpoint_num_tensors(c)) {
      return jigsaw::OutOfRangeError("tensor index " + std::to_string(index) + " out of range");
    }
    const auto& t = c->manifest.tensors[index].spec;
    if (t.shape.size() > 8) return jigsaw::UnimplementedError("tensor " + t.name + " has more than 8 dimensions");
    if (name) *name = t.name.c_str();
    if (dtype) *dtype = t.dtype.name.c_str();
    if (ndim) *ndim = static_cast<int>(t.shape.size());
    if (shape)
      for (size_t d = 0; d < t.shape.size(); ++d) shape[d] = t.shape[d];
    return jigsaw::OkStatus();
  });
}

int jigsaw_checkpoint_read(const jigsaw_checkpoint* c, const char* name, const int64_t* origin, const int64_t* shape,
                           void* dst, size_t dst_bytes, char** errptr) {
  return Guard(errptr, [&]() -> jigsaw::Status {
    if (!c || !name) return jigsaw::InvalidArgumentError("jigsaw_checkpoint_read: NULL checkpoint or name");
    const jigsaw::TensorRecord* t = c->manifest.Find(name);
    if (!t) return jigsaw::NotFoundError(std::string("no tensor \"") + name + "\"");
    const size_t rank = t->spec.shape.size();
    if (rank > 0 && (!origin || !shape)) {
      return jigsaw::InvalidArgumentError("jigsaw_checkpoint_read: NULL origin or shape for tensor " + t->spec.name +
                                          " of " + std::to_string(rank) + " dimensions");
    }
    jigsaw::Box box{std::vector<int64_t>(origin, origin + rank), std::vector<int64_t>(shape, shape + rank)};
    RETURN_IF_ERROR(jigsaw::CheckBoxWithin(t->spec, box));
    const size_t n = static_cast<size_t>(box.num_elements() * t->spec.dtype.size);
    if (!dst || dst_bytes < n) return jigsaw::InvalidArgumentError("destination smaller than the box (" + std::to_string(n) + " bytes)");
    ASSIGN_OR_RETURN(std::string bytes, jigsaw::ReadTensorBox(c->root.get(), c->step_dir, c->manifest, *t, box));
    std::memcpy(dst, bytes.data(), n);
    return jigsaw::OkStatus();
  });
}

void jigsaw_checkpoint_close(jigsaw_checkpoint* c) { delete c; }

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
        return jigsaw::InvalidArgumentError("mesh " + save->mesh.ToString() + " has " + std::to_string(save->mesh.size()) +
                                            " ranks but " + std::to_string(save->comm->size()) + " MPI processes save it");
      }
    } else if (!how.empty()) {
      return jigsaw::InvalidArgumentError("unknown communicator \"" + how + "\" (NULL, \"\" or \"mpi\")");
    }
    ASSIGN_OR_RETURN(save->root, jigsaw::OpenKvStore(root));
    *out = save.release();
    return jigsaw::OkStatus();
  });
}

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
                                        nlohmann::json(held).dump() + " of " + t.dtype.name + " is " + std::to_string(n));
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
    jigsaw::Status previous = s->saver.Start(s->root.get(), s->step, s->mesh, s->specs,
                                             jigsaw::TilesFromMemory(s->specs, s->buffers, s->whole()), s->options,
                                             s->comm.get());
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
void jigsaw_free(void* p) { std::free(p); }

}  // extern "C"

static_assert(JIGSAW_EINVAL == static_cast<int>(jigsaw::StatusCode::kInvalidArgument) &&
                  JIGSAW_ENOTFOUND == static_cast<int>(jigsaw::StatusCode::kNotFound) &&
                  JIGSAW_EDATALOSS == static_cast<int>(jigsaw::StatusCode::kDataLoss) &&
                  JIGSAW_EIO == static_cast<int>(jigsaw::StatusCode::kIo) &&
                  JIGSAW_EUNIMPLEMENTED == static_cast<int>(jigsaw::StatusCode::kUnimplemented) &&
                  JIGSAW_EPRECONDITION == static_cast<int>(jigsaw::StatusCode::kFailedPrecondition) &&
                  JIGSAW_ERANGE == static_cast<int>(jigsaw::StatusCode::kOutOfRange) &&
                  JIGSAW_EINTERNAL == static_cast<int>(jigsaw::StatusCode::kInternal),
              "the C API's status codes are jigsaw::StatusCode's");
