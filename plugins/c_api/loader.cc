// The C API over the prefetch loader.
#include <algorithm>
#include <memory>

#include "pipeline/loader/loader.h"
#include "plugins/c_api/c_api_internal.h"

using jigsaw::c_api::Guard;

struct jigsaw_loader {
  std::unique_ptr<jigsaw::Loader> loader;
  std::shared_ptr<jigsaw::Batch> current;  // the loader-owned buffer handed out last
};

extern "C" {

void jigsaw_loader_options_init(jigsaw_loader_options* o) {
  if (o == nullptr) return;  // the header's promise: never a crash
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

void jigsaw_loader_static_shape(const jigsaw_loader* l, int64_t shape[3]) {
  if (!l || !shape) return;
  auto s = l->loader->static_tile_shape();
  std::copy(s.begin(), s.end(), shape);
}

const float* jigsaw_loader_static_tile(const jigsaw_loader* l) {
  if (!l || l->loader->static_tile().empty()) return nullptr;
  return l->loader->static_tile().data();
}

int jigsaw_loader_next(jigsaw_loader* l, void* dst, size_t dst_bytes, const void** data, int64_t* times,
                       char** errptr) {
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

void jigsaw_loader_batch_members(const jigsaw_loader* l, int64_t* members) {
  if (!l || !members) return;
  const int64_t n = l->loader->batch_shape()[0];
  const std::vector<int64_t>* got = l->current ? &l->current->members() : nullptr;
  for (int64_t i = 0; i < n; ++i) members[i] = got && i < static_cast<int64_t>(got->size()) ? (*got)[i] : -1;
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
  *out = {s.batches,
          s.bytes_read,
          s.bytes_decoded,
          s.bytes_delivered,
          s.seconds,
          s.consumer_wait_seconds,
          s.read_amplification()};
}

void jigsaw_loader_close(jigsaw_loader* l) { delete l; }

}  // extern "C"
