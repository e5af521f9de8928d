// The backends this build has, registered here by hand (no static-constructor registration, which
// static libraries silently drop).
#include "train/backend.h"

namespace jigsaw::train {

std::string DeviceName(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

Result<std::unique_ptr<Backend>> NewBackend(std::string_view name, int cpu_threads) {
  if (name == "cpu") {
#ifdef JIGSAW_HAVE_BLAS
    return NewCpuBackend(cpu_threads);
#else
    return UnimplementedError("this build of jigsaw has no CPU backend (built without BLAS)");
#endif
  }
  if (name == "cuda" || name == "cuda:tf32" || name == "cuda:bf16") {
#ifdef JIGSAW_HAVE_CUDA
    return NewCudaBackend(name == "cuda"        ? GemmPrecision::kFloat32
                          : name == "cuda:tf32" ? GemmPrecision::kTF32
                                                : GemmPrecision::kBF16);
#else
    return UnimplementedError("this build of jigsaw has no CUDA backend (built without the CUDA toolkit)");
#endif
  }
  return InvalidArgumentError("unknown backend \"" + std::string(name) + "\" (cpu, cuda, cuda:tf32 or cuda:bf16)");
}

}  // namespace jigsaw::train
