// WeatherMixer (docs/models.md, docs/parallelism.md) on one rank of an s x s Jigsaw mesh: the rank's blocks of every
// weight, the forward pass of a batch of samples' tiles and its hand-written backward, in reverse order, in
// one readable function each (and one mixer block's forward and backward side by side). No autograd: the
// forward keeps exactly what the backward reads.
//
// A rank's tile of a sample is [c_j, h_i, w_i]: the channels of group j over the domain part i (on one
// rank, every channel over the whole grid). Gradients accumulate over calls to ForwardBackward; the
// trainer zeroes them, sums the replicated vectors' parts and steps the optimiser.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "train/block_matmul.h"
#include "train/config.h"
#include "train/layernorm.h"
#include "train/mesh.h"
#include "train/parameter.h"

namespace jigsaw::train {

struct TileShape {
  int64_t channels, height, width;  // this rank's tile
  int64_t channel0, row0, col0;     // where it starts in the global sample
  int64_t size() const { return channels * height * width; }
};

class WeatherMixer {
 public:
  // Refuses a config that does not fit the mesh and the run's domain grid (ModelConfig::Validate; one rank:
  // 1x1). Weights initialised from `seed` on the whole tensors in their stored layout: matrices
  // U(-1/sqrt(rows), 1/sqrt(rows)), biases 0, LayerNorm gains 1; the same model on every mesh and grid.
  static Result<std::unique_ptr<WeatherMixer>> Create(const ModelConfig& config, Backend* backend, MeshComms* mesh,
                                                      uint64_t seed, DomainGrid grid = {});
  ~WeatherMixer();

  const ModelConfig& config() const { return config_; }
  const DomainGrid& grid() const { return grid_; }
  const MeshPosition& position() const { return mesh_->pos; }
  // The mesh the parameters are stored on (checkpoints): StoredMesh(grid()); this rank is i s + j on it.
  const Mesh& stored_mesh() const { return stored_mesh_; }
  const TileShape& tile() const { return tile_; }
  // Samples to put through the model at once (Trainer's micro-batches, jigsaw-rollout's groups): `asked`
  // when positive (a user's --micro-batch or --batch), else enough for about kFoldRows token rows per product
  // on this rank, at least 1. Measured on the CPU backend (bench/RESULTS.md): 32 tokens x 8 samples ran 1.28x
  // faster than one at a time, 128 x 4 1.03x, 4050 x 4 1.2x slower.
  static constexpr int64_t kFoldRows = 1024;
  int64_t SamplesAtOnce(int64_t asked) const {
    return asked > 0 ? asked : std::max<int64_t>(1, kFoldRows / tokens_);
  }
  // This rank's tile of the static input [s_j, h_i, w_i] (config().static_channels > 0): the store's
  // `static` array cut like the data (the loader's static_tile()).
  const TileShape& static_tile() const { return static_tile_; }
  std::vector<Parameter>& parameters() { return params_; }
  Parameter* Find(const std::string& name);
  BlockMatmul& matmul() { return mm_; }

  // The static input of every sample from now on: this rank's static tile (host memory). Required before
  // the first ForwardBackward or Predict of a model with static channels.
  Status SetStatic(const float* tile);

  // Latitude weights of every global row [H] and channel weights [C]; each rank keeps its own part.
  Status SetLossWeights(const std::vector<float>& lat_weights, const std::vector<float>& channel_weights);

  // `batch` samples rolled out `steps` times together: s_0 = x0, s_k+1 = s_k + tendency(s_k). x0 holds this
  // rank's tile [c_j, h_i, w_i] of each sample ([B, tile]); targets the truth after each application
  // ([B, steps, tile]); both in host memory or, with `on_device`, on the backend's device. The samples go
  // through the model as one: their tokens are the rows of every product (M = B T; the token mix's columns,
  // B D), so the GEMMs grow with the batch and each weight block is exchanged once per product, not once per
  // sample; activations grow with it too (Trainer's micro-batches bound them). Adds `scale` times this
  // rank's share of sum_b sum_k sum w_lat w_c (s_k+1 - target_k)^2 to the returned loss and its gradient,
  // back-propagated through every application, to every parameter's grad.
  //
  // `final`, when given, is handed the parameters whose gradients this call will not touch again, during the
  // backward of its last application (the rollout's first), in the order they become final: the head's,
  // each block's from the last, the embedding's (and W_s). Every parameter exactly once, as consecutive runs
  // of parameters(). The trainer starts their data-parallel sums there, beside the rest of the backward; an
  // error it returns ends the call.
  using GradientsFinal = std::function<Status(std::span<Parameter>)>;
  Result<double> ForwardBackward(const float* x0, const float* targets, int64_t batch, int64_t steps, float scale,
                                 bool on_device = false, const GradientsFinal& final = {});
  // The tendencies of `batch` samples' tiles x0 [B, tile] (host in, host out), together; no gradients.
  Status Predict(const float* x0, float* tendency, int64_t batch = 1);

  // Activation recomputation (jigsaw-train --recompute): the forward keeps only each block's input, and the
  // backward runs each block's forward again just before its backward, into one set of activations shared
  // by all blocks. Memory for activations drops from depth sets to one set plus depth inputs [T, D], for
  // one more forward pass of the blocks; gradients are the same bit for bit (the same kernels on the same
  // data). The recomputed products are counted apart (BlockMatmulStats::recomputed_*).
  Status SetRecompute(bool on);
  bool recompute() const { return recompute_; }

 private:
  struct Block;             // one mixer block's parameters
  struct BlockActivations;  // what one block's backward reads
  struct Pass;              // what one application of the model keeps for its backward
  WeatherMixer(const ModelConfig& c, DomainGrid grid, Backend* be, MeshComms* mesh);
  // Create's work once the config is valid; its allocations may throw OutOfMemory (Create catches it).
  static std::unique_ptr<WeatherMixer> CreateAllocating(const ModelConfig& c, Backend* be, MeshComms* mesh,
                                                        uint64_t seed, DomainGrid grid);
  Pass MakePass();
  BlockActivations MakeBlockActivations();
  // One block's forward on z (in place), keeping in x what its backward reads; its backward, dz_ from the
  // gradient of the block's output to that of its input.
  Status BlockForward(Block& k, BlockActivations& x, float* z);
  Status BlockBackward(Block& k, BlockActivations& x);
  // The forward of one application: state (device tile) -> tendency_ (device tile).
  Status Forward(Pass& pass, const float* state);
  // Its backward: dtendency (device tile) -> parameter grads, and, when dstate is given, dstate = the
  // gradient with respect to the application's input state. `final` (the last application's backward
  // only): as ForwardBackward's.
  Status Backward(Pass& pass, const float* dtendency, float* dstate, const GradientsFinal* final);
  void AddParameter(const std::string& name, Layout layout, std::vector<int64_t> shape, const Bounds& rows,
                    const Bounds& cols, bool decay, bool embed_or_head, std::vector<int64_t> stored_shape = {},
                    PartitionSpec stored_partition = {});
  // tile [channels, h, w] <-> tokens [t, channels ph pw] (to_tokens picks the direction), domain part by
  // domain part.
  void Patches(float* tile, int64_t channels, float* tokens, bool to_tokens);
  // The current samples' tiles [B, channels, h, w] <-> tokens [t, B, channels ph pw].
  void BatchPatches(float* tiles, int64_t channels, int64_t tile_size, float* tokens, bool to_tokens);
  // Tensors for at least `samples` samples; then the current call's sample count and batched bounds.
  void Reserve(int64_t samples);
  void SetBatch(int64_t samples);
  void ResetPasses();
  const float* StaticTokens() const;  // [t, B, static features] for the current samples
  // Every matrix's operand copy (Parameter::operand) from its value: at the start of every pass, so that
  // the products read this pass's weights however they were changed (AdamW, a checkpoint, a test's upload).
  void ConvertWeights();
  // An activation only products read (a block's u, h, v, g): its float32 value is computed at
  // ActivationOut(t) and Keep(t, n) keeps it, in the operand format with bf16 products (half the memory;
  // the products would round it so anyway), in place otherwise; Activation(t) hands it to a product.
  float* ActivationOut(Tensor& t);
  void Keep(Tensor& t, int64_t n);
  Backend::Operand Activation(const Tensor& t) const;

  ModelConfig config_;
  DomainGrid grid_;
  Mesh stored_mesh_;
  Backend* be_;
  MeshComms* mesh_;
  ModelSplits split_;
  TileShape tile_, static_tile_;
  int64_t tokens_, dim_, features_, token_hidden_, channel_hidden_;  // this rank's block sizes
  int64_t static_features_ = 0;
  BlockMatmul mm_;
  std::vector<Parameter> params_;
  Parameter *embed_w_, *embed_b_, *head_norm_w_, *head_norm_b_, *head_w_, *head_b_;
  Parameter* static_w_ = nullptr;  // W_s, with static channels
  Tensor static_tokens_;           // the static tile as tokens [t, s_j ph pw], set by SetStatic
  Tensor static_batch_;            // ... in each sample's place [t, B, s_j ph pw] (B > 1)
  int64_t static_batch_samples_ = 0;
  int64_t cap_ = 0, b_ = 1;    // samples the tensors hold; samples of the current call
  Bounds tokens_b_, dim_b_;    // the token and feature bounds times the current samples
  Tensor sample_tokens_;       // one sample's tokens, between its tile and its place among the batch's
  bool static_set_ = false;
  std::vector<Block> blocks_;
  std::vector<Pass> passes_;  // one per application of the longest rollout so far
  bool recompute_ = false;
  std::vector<BlockActivations> shared_;  // recomputing: the one set of block activations
  Tensor z_in_;                           // recomputing: a block's input, copied back for its forward again
  // The current samples: the states and their tendencies, the targets, the loss gradients per application
  // (dloss_), the gradient flowing back through the states (dstate_, dinput_); scratch of the passes.
  Tensor state_, tendency_, targets_, dloss_, dstate_, dinput_;
  Tensor z_, y_, dy_, dz_, dzf_, dtmp_, dhidden_, dtoken_, dtokens_, ln_scratch_;
  Tensor act_;  // bf16 products: an operand-only activation's float32 value, before Keep
  Tensor lat_w_, ch_w_;
};

}  // namespace jigsaw::train
