// The backends this build has, registered here by hand (no static-constructor registration, which
// static libraries silently drop).
#include "train/backend.h"

#include <cstdlib>
#include <cstring>

namespace jigsaw::train {

std::string DeviceName(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

float* Backend::AllocHost(int64_t n) {
  const size_t bytes = ((static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw OutOfMemory(bytes);
  return static_cast<float*>(p);
}
void Backend::FreeHost(float* p) { std::free(p); }

namespace {
// Host "devices": a copy.
class CopyUploader final : public Backend::Uploader {
 public:
  void Upload(float* dst, const float* host, int64_t n) override {
    if (n > 0) std::memcpy(dst, host, static_cast<size_t>(n) * sizeof(float));
  }
};
}  // namespace
std::unique_ptr<Backend::Uploader> Backend::NewUploader() { return std::make_unique<CopyUploader>(); }

Result<std::unique_ptr<Backend>> NewBackend(std::string_view name, int cpu_threads, int device) {
  if (name == "cpu" || name == "cpu:bf16") {
#ifdef JIGSAW_HAVE_BLAS
    return NewCpuBackend(cpu_threads, name == "cpu:bf16");
#else
    return UnimplementedError("this build of jigsaw has no CPU backend (built without BLAS)");
#endif
  }
  if (name == "cuda" || name == "cuda:tf32" || name == "cuda:bf16") {
#ifdef JIGSAW_HAVE_CUDA
    return NewCudaBackend(name == "cuda"        ? GemmPrecision::kFloat32
                          : name == "cuda:tf32" ? GemmPrecision::kTF32
                                                : GemmPrecision::kBF16,
                          device);
#else
    return UnimplementedError("this build of jigsaw has no CUDA backend (built without the CUDA toolkit)");
#endif
  }
  return InvalidArgumentError("unknown backend \"" + std::string(name) +
                              "\" (cpu, cpu:bf16, cuda, cuda:tf32 or cuda:bf16)");
}

#ifndef JIGSAW_HAVE_CUDA
int CudaDeviceCount() { return 0; }
#endif

Result<int> PickCudaDevice(const std::string& host, int64_t local_rank, int64_t local_ranks, int devices, bool bound) {
  if (devices == 1 && bound) return 0;
  if (local_ranks > devices) {
    return FailedPreconditionError(std::to_string(local_ranks) + (local_ranks == 1 ? " rank runs" : " ranks run") +
                                   " on " + host + ", which has " +
                                   std::to_string(devices) + " GPU" + (devices == 1 ? "" : "s") +
                                   ": one GPU per rank (start at most " + std::to_string(devices) +
                                   " ranks per machine, or bind one GPU to each rank with CUDA_VISIBLE_DEVICES)");
  }
  return static_cast<int>(local_rank);
}

Result<std::unique_ptr<Backend>> NewRankBackend(std::string_view name, int cpu_threads, Communicator* world) {
  // No GPU at all (or no CUDA backend): NewBackend says which.
  const int devices = name.starts_with("cuda") ? CudaDeviceCount() : 0;
  if (devices == 0) return NewBackend(name, cpu_threads);
  ASSIGN_OR_RETURN(HostPlace place, PlaceOnHost(world));
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  const bool bound = visible != nullptr && *visible != '\0' && std::strchr(visible, ',') == nullptr;
  Result<int> device = PickCudaDevice(place.host, place.local_rank, place.local_ranks, devices, bound);
  if (!device.ok()) return device.status();
  return NewBackend(name, cpu_threads, *device);
}

}  // namespace jigsaw::train
