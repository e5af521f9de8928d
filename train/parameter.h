// One weight of the model as a rank holds it: its global shape, the block this rank owns, and the value,
// gradient and AdamW moments of that block on the backend's device.
//
// How it splits (docs/parallelism.md): a matrix [R, C] is cut into s x s blocks, rank (i, j) holding block (i, j);
// a vector indexing a dimension split along the mesh columns (D, Hf, features) holds part j and is
// replicated down the mesh column (every i), and one indexing a dimension split along the mesh rows
// (tokens, Hs) holds part i and is replicated along the mesh row. Replicated copies get the same summed
// gradient, so they stay bit-identical; the gradient norm counts each once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/box.h"
#include "parallel/mesh.h"
#include "train/block_matmul.h"
#include "train/tensor.h"

namespace jigsaw::train {

enum class Layout { kMatrix, kColumnPart, kRowPart };

struct Parameter {
  std::string name;  // the PyTorch oracle's state_dict name
  Layout layout = Layout::kMatrix;
  std::vector<int64_t> shape;           // global: [R, C] or [n]
  std::vector<int64_t> origin, extent;  // this rank's block
  bool decay = false;                   // weight decay applies (matrices)
  bool embed_or_head = false;           // in the embedding / head learning-rate group
  Tensor value, grad, adam_m, adam_v;
  // A matrix's value as GEMM operands (bfloat16 with bf16 products; empty with float32 ones): the weights
  // the products read, converted from `value` (the float32 master) once at the start of every pass
  // (WeatherMixer::ConvertWeights), not once per product.
  Tensor operand;
  Backend::Operand AsOperand() const {
    return operand.size() > 0 ? Backend::Operand{operand.data(), true} : Backend::Operand{value.data(), false};
  }
  // The one layout of the parameter outside a run, whatever mesh holds it: how checkpoints, exports, the
  // PyTorch oracle and jigsaw.torch store it. Its shape: a token dimension T becomes [patch rows, patch
  // columns] (tokens by patch position), a token-feature dimension F = C ph pw becomes [C, ph pw]. Its
  // partition spec on the run's StoredMesh (train/mesh.h), and this rank's block as a box of that shape:
  // exactly `value`'s elements, in the same byte order.
  std::vector<int64_t> stored_shape;
  PartitionSpec stored_partition;
  Box stored_box;

  int64_t local_size() const {
    int64_t n = 1;
    for (int64_t e : extent) n *= e;
    return n;
  }
  // Where each element of this rank's block lies in the whole tensor in its stored layout (C order), and
  // this rank's block cut out of such a tensor.
  std::vector<int64_t> StoredIndices() const;
  std::vector<float> Cut(const std::vector<float>& stored) const;
  // True on the one copy of a replicated vector that the gradient norm counts (and checkpoints save).
  bool Counted(int64_t i, int64_t j) const {
    return layout == Layout::kMatrix || (layout == Layout::kColumnPart ? i == 0 : j == 0);
  }
};

// The value at `index` (C order in the global tensor) of a tensor initialised U(-bound, bound) from
// `seed` and the tensor's position `tensor` in the model: the same on every mesh, whoever holds it.
float InitValue(uint64_t seed, int64_t tensor, int64_t index, float bound);

}  // namespace jigsaw::train
