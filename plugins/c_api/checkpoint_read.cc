// The C API over checkpoint reads: open a step, list its tensors, read any box.
#include <memory>

#include "plugins/c_api/c_api_internal.h"
#include "storage/checkpoint/checkpoint.h"

using jigsaw::c_api::Guard;

struct jigsaw_checkpoint {
  std::unique_ptr<jigsaw::KvStore> root;
  std::string step_dir;
  jigsaw::Manifest manifest;
  std::string metadata;  // manifest.metadata as text
};

extern "C" {

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

int jigsaw_checkpoint_tensor(const jigsaw_checkpoint* c, int64_t index, const char** name, const char** dtype,
                             int* ndim, int64_t shape[8], char** errptr) {
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
    if (!dst || dst_bytes < n)
      return jigsaw::InvalidArgumentError("destination smaller than the box (" + std::to_string(n) + " bytes)");
    ASSIGN_OR_RETURN(std::string bytes, jigsaw::ReadTensorBox(c->root.get(), c->step_dir, c->manifest, *t, box));
    std::memcpy(dst, bytes.data(), n);
    return jigsaw::OkStatus();
  });
}

void jigsaw_checkpoint_close(jigsaw_checkpoint* c) { delete c; }

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
