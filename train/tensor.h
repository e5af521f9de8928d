// A float32 buffer on one backend's device, freed with it. Shapes live with the code that uses the
// buffer (the model knows its blocks); the buffer knows only its size and where it lives.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "train/backend.h"

namespace jigsaw::train {

class Tensor {
 public:
  Tensor() = default;
  Tensor(Backend* backend, int64_t n) : backend_(backend), data_(n > 0 ? backend->Alloc(n) : nullptr), size_(n) {}
  ~Tensor() { Reset(); }
  Tensor(Tensor&& o) noexcept { *this = std::move(o); }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      Reset();
      backend_ = std::exchange(o.backend_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  Device device() const { return backend_->device(); }

  void Upload(const std::vector<float>& host) { backend_->Upload(data_, host.data(), size_); }
  std::vector<float> Download() const {
    std::vector<float> host(size_);
    backend_->Download(host.data(), data_, size_);
    return host;
  }

 private:
  void Reset() {
    if (data_) backend_->Free(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  Backend* backend_ = nullptr;
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace jigsaw::train
