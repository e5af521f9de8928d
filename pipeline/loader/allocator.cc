// Batch buffer allocators: page-locked host memory through the CUDA runtime when jigsaw is built with CUDA
// and a device is present (so that host-to-device copies run at full speed), 4 KiB-aligned host memory
// otherwise.
#include <cstdlib>

#include "pipeline/loader/loader.h"

#ifdef JIGSAW_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace jigsaw {
namespace {

BufferAllocator AlignedAllocator() {
  return {[](size_t bytes) -> void* {
            size_t rounded = (bytes + 4095) / 4096 * 4096;
            return std::aligned_alloc(4096, rounded ? rounded : 4096);
          },
          [](void* p, size_t) { std::free(p); }, "aligned host memory"};
}

}  // namespace

BufferAllocator DefaultBufferAllocator() {
#ifdef JIGSAW_HAVE_CUDA
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
    return {[](size_t bytes) -> void* {
              void* p = nullptr;
              if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) return nullptr;
              return p;
            },
            [](void* p, size_t) { cudaFreeHost(p); }, "CUDA page-locked host memory"};
  }
#endif
  return AlignedAllocator();
}

}  // namespace jigsaw
