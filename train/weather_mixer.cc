#include "train/weather_mixer.h"

#include <array>
#include <cmath>
#include <utility>

namespace jigsaw::train {

struct WeatherMixer::Block {
  Parameter *token_norm_w, *token_norm_b, *token_w1, *token_b1, *token_w2, *token_b2;
  Parameter *channel_norm_w, *channel_norm_b, *channel_w1, *channel_b1, *channel_w2, *channel_b2;
  // Each parameter's name in the checkpoint (after "blocks.<l>.") and its field.
  static std::array<std::pair<const char*, Parameter * Block::*>, 12> Named() {
    return {{{"token_norm_w", &Block::token_norm_w},
             {"token_norm_b", &Block::token_norm_b},
             {"token_w1", &Block::token_w1},
             {"token_b1", &Block::token_b1},
             {"token_w2", &Block::token_w2},
             {"token_b2", &Block::token_b2},
             {"channel_norm_w", &Block::channel_norm_w},
             {"channel_norm_b", &Block::channel_norm_b},
             {"channel_w1", &Block::channel_w1},
             {"channel_b1", &Block::channel_b1},
             {"channel_w2", &Block::channel_w2},
             {"channel_b2", &Block::channel_b2}}};
  }
};

// What one block's backward reads: token mix u = LN(z), a = W_t1^T u + b_t1 (pre-GELU), h = GELU(a)
// [Hs, D]; channel mix v = LN(z), c = v W_c1 + b_c1 (pre-GELU), g = GELU(c) [T, Hf]. u, h, v and g are read
// by products only: with bf16 products they are kept as bfloat16 operands (Activation()), half the memory,
// as are a pass's input tokens and the head's input.
struct WeatherMixer::BlockActivations {
  LayerNormCache token_ln, channel_ln;
  Tensor u, a, h, v, c, g;
};

struct WeatherMixer::Pass {
  Tensor tokens_in;                      // the input state's tokens [T, F] (products only: Activation())
  std::vector<BlockActivations> blocks;  // per block; empty when recomputing (the model's shared set serves)
  std::vector<Tensor> block_inputs;      // when recomputing: each block's input z [T, D], all it keeps
  LayerNormCache head_ln;
  Tensor zf;  // LN_f(z), the head's input (products only: Activation())
};

WeatherMixer::BlockActivations WeatherMixer::MakeBlockActivations() {
  const int64_t tr = tokens_ * cap_, dj = dim_, hs = token_hidden_ * cap_, hf = channel_hidden_;
  BlockActivations k;
  k.token_ln = {Tensor(be_, tr * dj), Tensor(be_, tr)};
  k.channel_ln = {Tensor(be_, tr * dj), Tensor(be_, tr)};
  k.u = Tensor(be_, be_->operand_floats(tr * dj));
  k.a = Tensor(be_, hs * dj);
  k.h = Tensor(be_, be_->operand_floats(hs * dj));
  k.v = Tensor(be_, be_->operand_floats(tr * dj));
  k.c = Tensor(be_, tr * hf);
  k.g = Tensor(be_, be_->operand_floats(tr * hf));
  return k;
}

WeatherMixer::Pass WeatherMixer::MakePass() {
  const int64_t tr = tokens_ * cap_, dj = dim_, fj = features_;
  Pass p;
  p.tokens_in = Tensor(be_, be_->operand_floats(tr * fj));
  for (size_t l = 0; l < blocks_.size(); ++l) {
    if (recompute_)
      p.block_inputs.emplace_back(be_, tr * dj);
    else
      p.blocks.push_back(MakeBlockActivations());
  }
  p.head_ln = {Tensor(be_, tr * dj), Tensor(be_, tr)};
  p.zf = Tensor(be_, be_->operand_floats(tr * dj));
  return p;
}

Status WeatherMixer::SetRecompute(bool on) {
  if (on == recompute_) return OkStatus();
  recompute_ = on;
  ResetPasses();
  return OkStatus();
}

// Passes are made again on first use, each in the current way and size (a pass holds no state between
// calls); recomputing, the one shared set of block activations and the block input's copy are made here.
void WeatherMixer::ResetPasses() {
  passes_.clear();
  shared_.clear();
  z_in_ = Tensor();
  if (recompute_) {
    shared_.push_back(MakeBlockActivations());
    z_in_ = Tensor(be_, tokens_ * cap_ * dim_);
  }
}

// Tensors for `samples` samples at once (never fewer than before).
void WeatherMixer::Reserve(int64_t samples) {
  if (samples <= cap_) return;
  cap_ = samples;
  const int64_t tr = tokens_ * cap_, dj = dim_, fj = features_, hs = token_hidden_ * cap_, hf = channel_hidden_;
  const int64_t tile = tile_.size() * cap_;
  state_ = Tensor(be_, tile);
  tendency_ = Tensor(be_, tile);
  dstate_ = Tensor(be_, tile);
  dinput_ = Tensor(be_, tile);
  y_ = Tensor(be_, tr * fj);
  dy_ = Tensor(be_, tr * fj);
  dtokens_ = Tensor(be_, tr * fj);
  z_ = Tensor(be_, tr * dj);
  dz_ = Tensor(be_, tr * dj);
  dzf_ = Tensor(be_, tr * dj);
  dtmp_ = Tensor(be_, tr * dj);
  dhidden_ = Tensor(be_, tr * hf);
  dtoken_ = Tensor(be_, hs * dj);
  ln_scratch_ = Tensor(be_, 2 * tr);
  // With bf16 products, where u, h, v and g are computed in float32 before they are kept as operands.
  act_ = be_->narrow_operands() ? Tensor(be_, std::max({tr * dj, hs * dj, tr * hf, tr * fj})) : Tensor();
  // One sample's tokens on their way to (from) their places among the batch's.
  sample_tokens_ = cap_ > 1 ? Tensor(be_, tokens_ * std::max(features_, static_features_)) : Tensor();
  if (static_w_) static_batch_ = Tensor(be_, tr * static_features_);
  static_batch_samples_ = 0;
  ResetPasses();
}

// The current call's samples: the row counts and the bounds of the batched products.
void WeatherMixer::SetBatch(int64_t samples) {
  Reserve(samples);
  b_ = samples;
  auto times = [samples](const Bounds& b) {
    Bounds out = b;
    for (auto& x : out) x *= samples;
    return out;
  };
  tokens_b_ = times(split_.tokens);
  dim_b_ = times(split_.dim);
  // The static tokens, the same for every sample, in each sample's place.
  if (static_w_ && static_set_ && samples > 1 && static_batch_samples_ != samples) {
    for (int64_t b = 0; b < samples; ++b)
      be_->CopyRows(static_batch_.data() + b * static_features_, samples * static_features_, static_tokens_.data(),
                    static_features_, tokens_, static_features_);
    static_batch_samples_ = samples;
  }
}

WeatherMixer::WeatherMixer(const ModelConfig& c, DomainGrid grid, Backend* be, MeshComms* mesh)
    : config_(c), grid_(grid), stored_mesh_(StoredMesh(grid)), be_(be), mesh_(mesh), mm_(be, mesh) {}

WeatherMixer::~WeatherMixer() = default;

Parameter* WeatherMixer::Find(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

void WeatherMixer::AddParameter(const std::string& name, Layout layout, std::vector<int64_t> shape, const Bounds& rows,
                                const Bounds& cols, bool decay, bool embed_or_head, std::vector<int64_t> stored_shape,
                                PartitionSpec stored_partition) {
  const auto& pos = mesh_->pos;
  Parameter p;
  p.name = name;
  p.layout = layout;
  p.shape = std::move(shape);
  p.decay = decay;
  p.embed_or_head = embed_or_head;
  switch (layout) {
    case Layout::kMatrix:
      p.origin = {rows[pos.i], cols[pos.j]};
      p.extent = {rows[pos.i + 1] - rows[pos.i], cols[pos.j + 1] - cols[pos.j]};
      break;
    case Layout::kColumnPart:
      p.origin = {cols[pos.j]};
      p.extent = {cols[pos.j + 1] - cols[pos.j]};
      break;
    case Layout::kRowPart:
      p.origin = {rows[pos.i]};
      p.extent = {rows[pos.i + 1] - rows[pos.i]};
      break;
  }
  if (stored_shape.empty()) {
    p.stored_shape = p.shape;
    p.stored_partition = layout == Layout::kMatrix       ? PartitionSpec{kRowsAxes, kColumnsAxes}
                         : layout == Layout::kColumnPart ? PartitionSpec{kColumnsAxes}
                                                         : PartitionSpec{kRowsAxes};
  } else {
    p.stored_shape = std::move(stored_shape);
    p.stored_partition = std::move(stored_partition);
  }
  // The stored box is this rank's block: validated by Create (Validate), so the split cannot fail here.
  p.stored_box = TileOf(p.stored_shape, p.stored_partition, stored_mesh_, pos.i * pos.s + pos.j).value();
  const int64_t n = p.local_size();
  p.value = Tensor(be_, n);
  p.grad = Tensor(be_, n);
  p.adam_m = Tensor(be_, n);
  p.adam_v = Tensor(be_, n);
  if (layout == Layout::kMatrix && be_->narrow_operands()) p.operand = Tensor(be_, be_->operand_floats(n));
  params_.push_back(std::move(p));
}

namespace {

// Runs `f`, whose allocations may fail: out of memory becomes an error naming the bytes, not an abort.
template <typename F>
Status Allocating(const char* what, F&& f) {
  try {
    f();
    return OkStatus();
  } catch (const std::bad_alloc& e) {
    return FailedPreconditionError(std::string(what) + ": " + e.what());
  }
}

}  // namespace

Result<std::unique_ptr<WeatherMixer>> WeatherMixer::Create(const ModelConfig& c, Backend* be, MeshComms* mesh,
                                                           uint64_t seed, DomainGrid grid) {
  RETURN_IF_ERROR(c.Validate(mesh->pos.s, grid));
  std::unique_ptr<WeatherMixer> m;
  RETURN_IF_ERROR(Allocating("the model's weights and activations on this rank",
                             [&] { m = CreateAllocating(c, be, mesh, seed, grid); }));
  return m;
}

std::unique_ptr<WeatherMixer> WeatherMixer::CreateAllocating(const ModelConfig& c, Backend* be, MeshComms* mesh,
                                                             uint64_t seed, DomainGrid grid) {
  const auto& pos = mesh->pos;
  std::unique_ptr<WeatherMixer> m(new WeatherMixer(c, grid, be, mesh));
  const int64_t s = pos.s;
  const ModelSplits& sp = m->split_ = SplitModel(c, s);
  const Bounds none = {0, 0};
  auto part = [&](const Bounds& b, int64_t q) { return b[q + 1] - b[q]; };
  m->tokens_ = part(sp.tokens, pos.i);
  m->dim_ = part(sp.dim, pos.j);
  m->features_ = part(sp.features, pos.j);
  if (c.static_channels > 0) m->static_features_ = part(sp.static_features, pos.j);
  m->token_hidden_ = part(sp.token_hidden, pos.i);
  m->channel_hidden_ = part(sp.channel_hidden, pos.j);
  // The tile: channel group j over domain part i (on one rank: everything).
  {
    const int64_t hb = c.height / grid.lat, wb = c.width / grid.lon;
    m->tile_ = {part(sp.channels, pos.j), hb, wb, sp.channels[pos.j], (pos.i / grid.lon) * hb, (pos.i % grid.lon) * wb};
  }
  m->static_tile_ = m->tile_;
  m->static_tile_.channels = c.static_channels > 0 ? part(sp.static_channels, pos.j) : 0;
  m->static_tile_.channel0 = c.static_channels > 0 ? sp.static_channels[pos.j] : 0;

  const int64_t T = c.tokens(), D = c.dim, F = c.features(), Hs = c.token_hidden, Hf = c.channel_hidden;
  // Vectors take their split from the bounds of the dimension they index (the other argument is unused).
  const int64_t C = c.channels, P = c.patch_pixels();
  // Stored layouts (Parameter::stored_shape): tokens by patch position [PR, PC], token features [C, ph pw].
  const int64_t PR = c.patch_rows(), PC = c.patch_cols();
  const std::optional<std::string> rows = kRowsAxes, cols = kColumnsAxes, no = std::nullopt;
  m->AddParameter("embed_w", Layout::kMatrix, {F, D}, sp.features, sp.dim, true, true, {C, P, D}, {rows, no, cols});
  m->AddParameter("embed_b", Layout::kColumnPart, {D}, none, sp.dim, false, true);
  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    m->AddParameter(b + "token_norm_w", Layout::kColumnPart, {D}, none, sp.dim, false, false);
    m->AddParameter(b + "token_norm_b", Layout::kColumnPart, {D}, none, sp.dim, false, false);
    // A token dimension split along the mesh rows (columns) is domain part i (j): a box of [PR, PC].
    m->AddParameter(b + "token_w1", Layout::kMatrix, {T, Hs}, sp.tokens, sp.token_hidden, true, false, {PR, PC, Hs},
                    {"domain_lat", "domain_lon", cols});
    m->AddParameter(b + "token_b1", Layout::kRowPart, {Hs}, sp.token_hidden, none, false, false);
    m->AddParameter(b + "token_w2", Layout::kMatrix, {Hs, T}, sp.token_hidden, sp.tokens, true, false, {Hs, PR, PC},
                    {rows, "tensor_lat", "tensor_lon"});
    m->AddParameter(b + "token_b2", Layout::kRowPart, {T}, sp.tokens, none, false, false, {PR, PC},
                    {"domain_lat", "domain_lon"});
    m->AddParameter(b + "channel_norm_w", Layout::kColumnPart, {D}, none, sp.dim, false, false);
    m->AddParameter(b + "channel_norm_b", Layout::kColumnPart, {D}, none, sp.dim, false, false);
    m->AddParameter(b + "channel_w1", Layout::kMatrix, {D, Hf}, sp.dim, sp.channel_hidden, true, false);
    m->AddParameter(b + "channel_b1", Layout::kColumnPart, {Hf}, none, sp.channel_hidden, false, false);
    m->AddParameter(b + "channel_w2", Layout::kMatrix, {Hf, D}, sp.channel_hidden, sp.dim, true, false);
    m->AddParameter(b + "channel_b2", Layout::kColumnPart, {D}, none, sp.dim, false, false);
  }
  m->AddParameter("head_norm_w", Layout::kColumnPart, {D}, none, sp.dim, false, false);
  m->AddParameter("head_norm_b", Layout::kColumnPart, {D}, none, sp.dim, false, false);
  m->AddParameter("head_w", Layout::kMatrix, {D, F}, sp.dim, sp.features, true, true, {D, C, P}, {rows, cols, no});
  m->AddParameter("head_b", Layout::kColumnPart, {F}, none, sp.features, false, true, {C, P}, {cols, no});
  // Last, so that the other parameters' seeded values do not depend on whether there are static channels.
  if (const int64_t S = c.static_channels; S > 0)
    m->AddParameter("static_w", Layout::kMatrix, {S * P, D}, sp.static_features, sp.dim, true, true, {S, P, D}, {rows, no, cols});

  // Pointers into params_ (complete now, so they stay valid).
  m->embed_w_ = m->Find("embed_w");
  m->embed_b_ = m->Find("embed_b");
  m->head_norm_w_ = m->Find("head_norm_w");
  m->head_norm_b_ = m->Find("head_norm_b");
  m->head_w_ = m->Find("head_w");
  m->head_b_ = m->Find("head_b");
  m->static_w_ = c.static_channels > 0 ? m->Find("static_w") : nullptr;
  const int64_t tr = m->tokens_;
  m->blocks_.resize(c.depth);
  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    Block& k = m->blocks_[l];
    for (const auto& [name, field] : Block::Named()) k.*field = m->Find(b + name);
  }
  m->Reserve(1);
  if (m->static_w_) m->static_tokens_ = Tensor(be, tr * m->static_features_);
  m->lat_w_ = Tensor(be, m->tile_.height);
  m->ch_w_ = Tensor(be, m->tile_.channels);
  be->Fill(m->lat_w_.data(), m->lat_w_.size(), 1.0f);
  be->Fill(m->ch_w_.data(), m->ch_w_.size(), 1.0f);

  // Seeded initialisation of the whole tensors in their stored layout; each rank makes its own block.
  for (size_t t = 0; t < m->params_.size(); ++t) {
    Parameter& p = m->params_[t];
    std::vector<float> host(p.local_size());
    const bool gain = p.name.ends_with("norm_w");
    if (p.layout == Layout::kMatrix) {
      const float bound = 1.0f / std::sqrt(static_cast<float>(p.shape[0]));
      const std::vector<int64_t> at = p.StoredIndices();
      for (size_t e = 0; e < at.size(); ++e) host[e] = InitValue(seed, static_cast<int64_t>(t), at[e], bound);
    } else {
      std::fill(host.begin(), host.end(), gain ? 1.0f : 0.0f);
    }
    p.value.Upload(host);
  }
  return m;
}

Status WeatherMixer::SetLossWeights(const std::vector<float>& lat, const std::vector<float>& channel) {
  if (static_cast<int64_t>(lat.size()) != config_.height || static_cast<int64_t>(channel.size()) != config_.channels) {
    return InvalidArgumentError("loss weights: " + std::to_string(lat.size()) + " latitude and " +
                                std::to_string(channel.size()) + " channel weights for a " +
                                std::to_string(config_.channels) + "-channel grid of " +
                                std::to_string(config_.height) + " rows");
  }
  lat_w_.Upload(std::vector<float>(lat.begin() + tile_.row0, lat.begin() + tile_.row0 + tile_.height));
  ch_w_.Upload(std::vector<float>(channel.begin() + tile_.channel0, channel.begin() + tile_.channel0 + tile_.channels));
  return OkStatus();
}

Status WeatherMixer::SetStatic(const float* tile) {
  if (!static_w_) return FailedPreconditionError("the model has no static channels (config static_channels 0)");
  Tensor staged(be_, static_tile_.size());
  be_->Upload(staged.data(), tile, static_tile_.size());
  Patches(staged.data(), static_tile_.channels, static_tokens_.data(), true);
  static_set_ = true;
  static_batch_samples_ = 0;
  return OkStatus();
}

// The tile is one domain part (the whole grid on one rank): its tokens row-major inside it.
void WeatherMixer::Patches(float* tile, int64_t channels, float* tokens, bool to_tokens) {
  const Backend::Block b{channels, tile_.height, tile_.width, tile_.width, tile_.height * tile_.width};
  if (to_tokens)
    be_->Patchify(tile, b, config_.patch_h, config_.patch_w, tokens);
  else
    be_->Unpatchify(tokens, b, config_.patch_h, config_.patch_w, tile);
}

// The current samples' tiles [B, channels, h, w] (`tile_size` apart) <-> tokens [t, B, channels ph pw]: each
// sample's token r at row r B + b, so that the channel mix sees [t B, features] and the token mix [t, B D].
void WeatherMixer::BatchPatches(float* tiles, int64_t channels, int64_t tile_size, float* tokens, bool to_tokens) {
  if (b_ == 1) return Patches(tiles, channels, tokens, to_tokens);
  const int64_t f = channels * config_.patch_pixels();
  float* one = sample_tokens_.data();
  for (int64_t b = 0; b < b_; ++b) {
    if (to_tokens) {
      Patches(tiles + b * tile_size, channels, one, true);
      be_->CopyRows(tokens + b * f, b_ * f, one, f, tokens_, f);
    } else {
      be_->CopyRows(one, f, tokens + b * f, b_ * f, tokens_, f);
      Patches(tiles + b * tile_size, channels, one, false);
    }
  }
}

// One mixer block's forward on z [T, D] in place, keeping in x what its backward reads.
Status WeatherMixer::BlockForward(Block& k, BlockActivations& x, float* z) {
  const auto& sp = split_;
  // Rows: tokens of every sample (channel mix, LayerNorm); columns: features of every sample (token mix).
  const int64_t tr = tokens_ * b_, dj = dim_, hs = token_hidden_, hf = channel_hidden_, tb = tokens_, djb = dim_ * b_;
  const LayerNormShape ln{tr, dj, config_.dim, config_.ln_eps};
  TensorCommunicator* row = mesh_->row.get();
  float* scratch = ln_scratch_.data();
  // Token mix, hidden state kept transposed: h = GELU(W_t1^T LN(z) + b_t1) [Hs, D]; z += W_t2^T h + b_t2.
  RETURN_IF_ERROR(LayerNormForward(be_, row, ln, z, k.token_norm_w->value.data(), k.token_norm_b->value.data(),
                                   &x.token_ln, ActivationOut(x.u), scratch));
  Keep(x.u, tr * dj);
  RETURN_IF_ERROR(
      mm_.TN(sp.token_hidden, sp.tokens, dim_b_, k.token_w1->AsOperand(), Activation(x.u), 0.0f, x.a.data()));
  be_->BiasGelu(x.a.data(), ActivationOut(x.h), hs, djb, nullptr, k.token_b1->value.data());
  Keep(x.h, hs * djb);
  RETURN_IF_ERROR(mm_.TN(sp.tokens, sp.token_hidden, dim_b_, k.token_w2->AsOperand(), Activation(x.h), 1.0f, z));
  be_->AddBias(z, tb, djb, nullptr, k.token_b2->value.data());
  // Channel mix: z += GELU(LN(z) W_c1 + b_c1) W_c2 + b_c2.
  RETURN_IF_ERROR(LayerNormForward(be_, row, ln, z, k.channel_norm_w->value.data(), k.channel_norm_b->value.data(),
                                   &x.channel_ln, ActivationOut(x.v), scratch));
  Keep(x.v, tr * dj);
  RETURN_IF_ERROR(
      mm_.NN(tokens_b_, sp.dim, sp.channel_hidden, Activation(x.v), k.channel_w1->AsOperand(), 0.0f, x.c.data()));
  be_->BiasGelu(x.c.data(), ActivationOut(x.g), tr, hf, k.channel_b1->value.data(), nullptr);
  Keep(x.g, tr * hf);
  RETURN_IF_ERROR(
      mm_.NN(tokens_b_, sp.channel_hidden, sp.dim, Activation(x.g), k.channel_w2->AsOperand(), 1.0f, z));
  be_->AddBias(z, tr, dj, k.channel_b2->value.data(), nullptr);
  return OkStatus();
}

Status WeatherMixer::Forward(Pass& pass, const float* state) {
  const auto& sp = split_;
  const int64_t tr = tokens_ * b_, dj = dim_;
  const LayerNormShape ln{tr, dj, config_.dim, config_.ln_eps};
  TensorCommunicator* row = mesh_->row.get();
  float* scratch = ln_scratch_.data();
  BatchPatches(const_cast<float*>(state), tile_.channels, tile_.size(), ActivationOut(pass.tokens_in), true);
  Keep(pass.tokens_in, tr * features_);
  // Embedding: z = X W_e + X_s W_s + b_e (X_s: the static tokens, when the model has static channels).
  RETURN_IF_ERROR(
      mm_.NN(tokens_b_, sp.features, sp.dim, Activation(pass.tokens_in), embed_w_->AsOperand(), 0.0f, z_.data()));
  if (static_w_) {
    RETURN_IF_ERROR(
        mm_.NN(tokens_b_, sp.static_features, sp.dim, StaticTokens(), static_w_->AsOperand(), 1.0f, z_.data()));
  }
  be_->AddBias(z_.data(), tr, dj, embed_b_->value.data(), nullptr);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    if (recompute_) be_->Copy(pass.block_inputs[l].data(), z_.data(), tr * dj);
    RETURN_IF_ERROR(BlockForward(blocks_[l], recompute_ ? shared_[0] : pass.blocks[l], z_.data()));
  }
  // Head: y = LN_f(z) W_d + b_d, unpatched to the tendency tile.
  RETURN_IF_ERROR(LayerNormForward(be_, row, ln, z_.data(), head_norm_w_->value.data(), head_norm_b_->value.data(),
                                   &pass.head_ln, ActivationOut(pass.zf), scratch));
  Keep(pass.zf, tr * dj);
  RETURN_IF_ERROR(
      mm_.NN(tokens_b_, sp.dim, sp.features, Activation(pass.zf), head_w_->AsOperand(), 0.0f, y_.data()));
  be_->AddBias(y_.data(), tr, features_, head_b_->value.data(), nullptr);
  BatchPatches(tendency_.data(), tile_.channels, tile_.size(), y_.data(), false);
  return OkStatus();
}

// One mixer block's backward, in reverse order: dz_ (the gradient of its output) becomes the gradient of its
// input; its parameters' gradients accumulate.
Status WeatherMixer::BlockBackward(Block& k, BlockActivations& x) {
  const auto& sp = split_;
  // Rows: tokens of every sample (channel mix, LayerNorm); columns: features of every sample (token mix).
  const int64_t tr = tokens_ * b_, dj = dim_, hs = token_hidden_, hf = channel_hidden_, tb = tokens_, djb = dim_ * b_;
  const LayerNormShape ln{tr, dj, config_.dim, config_.ln_eps};
  TensorCommunicator* row = mesh_->row.get();
  float* scratch = ln_scratch_.data();
  // Channel mix: z_out = z + g W_c2 + b_c2, g = GELU(c), c = v W_c1 + b_c1, v = LN(z).
  be_->ColSumsAdd(dz_.data(), tr, dj, k.channel_b2->grad.data());
  RETURN_IF_ERROR(
      mm_.TN(sp.channel_hidden, tokens_b_, sp.dim, Activation(x.g), dz_.data(), 1.0f, k.channel_w2->grad.data()));
  RETURN_IF_ERROR(
      mm_.NT(tokens_b_, sp.dim, sp.channel_hidden, dz_.data(), k.channel_w2->AsOperand(), 0.0f, dhidden_.data()));
  be_->GeluBackward(x.c.data(), dhidden_.data(), dhidden_.data(), tr * hf);
  be_->ColSumsAdd(dhidden_.data(), tr, hf, k.channel_b1->grad.data());
  RETURN_IF_ERROR(
      mm_.TN(sp.dim, tokens_b_, sp.channel_hidden, Activation(x.v), dhidden_.data(), 1.0f, k.channel_w1->grad.data()));
  RETURN_IF_ERROR(
      mm_.NT(tokens_b_, sp.channel_hidden, sp.dim, dhidden_.data(), k.channel_w1->AsOperand(), 0.0f, dtmp_.data()));
  RETURN_IF_ERROR(LayerNormBackward(be_, row, ln, dtmp_.data(), k.channel_norm_w->value.data(), x.channel_ln,
                                    dz_.data(), k.channel_norm_w->grad.data(), k.channel_norm_b->grad.data(),
                                    scratch));
  // Token mix: z_out = z + W_t2^T h + b_t2, h = GELU(a), a = W_t1^T u + b_t1, u = LN(z).
  be_->RowSumsAdd(dz_.data(), tb, djb, k.token_b2->grad.data());
  RETURN_IF_ERROR(
      mm_.NT(sp.token_hidden, dim_b_, sp.tokens, Activation(x.h), dz_.data(), 1.0f, k.token_w2->grad.data()));
  RETURN_IF_ERROR(
      mm_.NN(sp.token_hidden, sp.tokens, dim_b_, k.token_w2->AsOperand(), dz_.data(), 0.0f, dtoken_.data()));
  be_->GeluBackward(x.a.data(), dtoken_.data(), dtoken_.data(), hs * djb);
  be_->RowSumsAdd(dtoken_.data(), hs, djb, k.token_b1->grad.data());
  RETURN_IF_ERROR(
      mm_.NT(sp.tokens, dim_b_, sp.token_hidden, Activation(x.u), dtoken_.data(), 1.0f, k.token_w1->grad.data()));
  RETURN_IF_ERROR(
      mm_.NN(sp.tokens, sp.token_hidden, dim_b_, k.token_w1->AsOperand(), dtoken_.data(), 0.0f, dtmp_.data()));
  RETURN_IF_ERROR(LayerNormBackward(be_, row, ln, dtmp_.data(), k.token_norm_w->value.data(), x.token_ln, dz_.data(),
                                    k.token_norm_w->grad.data(), k.token_norm_b->grad.data(), scratch));
  return OkStatus();
}

// The backward of Forward, in reverse order.
Status WeatherMixer::Backward(Pass& pass, const float* dtendency, float* dstate, const GradientsFinal* final) {
  // Hands [first, last] of parameters() over as final.
  auto hand_over = [&](Parameter* first, Parameter* last) -> Status {
    if (!final || !*final) return OkStatus();
    return (*final)(std::span<Parameter>(first, last + 1));
  };
  const auto& sp = split_;
  const int64_t tr = tokens_ * b_, dj = dim_;
  const LayerNormShape ln{tr, dj, config_.dim, config_.ln_eps};
  TensorCommunicator* row = mesh_->row.get();
  float* scratch = ln_scratch_.data();
  // Head.
  BatchPatches(const_cast<float*>(dtendency), tile_.channels, tile_.size(), dy_.data(), true);
  be_->ColSumsAdd(dy_.data(), tr, features_, head_b_->grad.data());
  RETURN_IF_ERROR(
      mm_.TN(sp.dim, tokens_b_, sp.features, Activation(pass.zf), dy_.data(), 1.0f, head_w_->grad.data()));
  RETURN_IF_ERROR(mm_.NT(tokens_b_, sp.features, sp.dim, dy_.data(), head_w_->AsOperand(), 0.0f, dzf_.data()));
  be_->Fill(dz_.data(), tr * dj, 0.0f);
  RETURN_IF_ERROR(LayerNormBackward(be_, row, ln, dzf_.data(), head_norm_w_->value.data(), pass.head_ln, dz_.data(),
                                    head_norm_w_->grad.data(), head_norm_b_->grad.data(), scratch));
  RETURN_IF_ERROR(hand_over(head_norm_w_, head_b_));
  for (size_t l = blocks_.size(); l-- > 0;) {
    if (recompute_) {
      // The block's activations again, from its input (the same kernels on the same data: the same bits).
      const BlockMatmulStats before = mm_.stats();
      be_->Copy(z_in_.data(), pass.block_inputs[l].data(), tr * dj);
      RETURN_IF_ERROR(BlockForward(blocks_[l], shared_[0], z_in_.data()));
      mm_.CountAsRecomputed(before);
    }
    RETURN_IF_ERROR(BlockBackward(blocks_[l], recompute_ ? shared_[0] : pass.blocks[l]));
    RETURN_IF_ERROR(hand_over(blocks_[l].token_norm_w, blocks_[l].channel_b2));
  }
  // Embedding: z = X W_e + X_s W_s + b_e; the input's gradient only when an earlier application needs it
  // (the static input has none: it is data).
  be_->ColSumsAdd(dz_.data(), tr, dj, embed_b_->grad.data());
  RETURN_IF_ERROR(
      mm_.TN(sp.features, tokens_b_, sp.dim, Activation(pass.tokens_in), dz_.data(), 1.0f, embed_w_->grad.data()));
  if (static_w_) {
    RETURN_IF_ERROR(
        mm_.TN(sp.static_features, tokens_b_, sp.dim, StaticTokens(), dz_.data(), 1.0f, static_w_->grad.data()));
  }
  RETURN_IF_ERROR(hand_over(embed_w_, embed_b_));
  if (static_w_) RETURN_IF_ERROR(hand_over(static_w_, static_w_));
  if (dstate) {
    RETURN_IF_ERROR(mm_.NT(tokens_b_, sp.dim, sp.features, dz_.data(), embed_w_->AsOperand(), 0.0f, dtokens_.data()));
    BatchPatches(dstate, tile_.channels, tile_.size(), dtokens_.data(), false);
  }
  return OkStatus();
}

float* WeatherMixer::ActivationOut(Tensor& t) { return act_.size() > 0 ? act_.data() : t.data(); }
void WeatherMixer::Keep(Tensor& t, int64_t n) {
  if (act_.size() > 0) be_->ToOperand(act_.data(), t.data(), n);
}
Backend::Operand WeatherMixer::Activation(const Tensor& t) const { return {t.data(), act_.size() > 0}; }

void WeatherMixer::ConvertWeights() {
  for (Parameter& p : params_)
    if (p.operand.size() > 0) be_->ToOperand(p.value.data(), p.operand.data(), p.local_size());
}

const float* WeatherMixer::StaticTokens() const {
  return b_ == 1 ? static_tokens_.data() : static_batch_.data();
}

Result<double> WeatherMixer::ForwardBackward(const float* x0, const float* targets, int64_t batch, int64_t steps,
                                             float scale, bool on_device, const GradientsFinal& final) {
  if (steps < 1) return InvalidArgumentError("a rollout needs at least one step");
  if (batch < 1) return InvalidArgumentError("a batch needs at least one sample");
  if (static_w_ && !static_set_) return FailedPreconditionError("the model has static channels: SetStatic first");
  const int64_t n = tile_.size(), bn = batch * n;
  RETURN_IF_ERROR(Allocating("activations for the batch", [&] {
    SetBatch(batch);
    while (static_cast<int64_t>(passes_.size()) < steps) passes_.push_back(MakePass());
    if (targets_.size() < steps * bn) {
      targets_ = Tensor(be_, steps * bn);
      dloss_ = Tensor(be_, steps * bn);
    }
  }));
  ConvertWeights();
  if (on_device) {
    be_->Copy(state_.data(), x0, bn);
    be_->Copy(targets_.data(), targets, steps * bn);
  } else {
    be_->Upload(state_.data(), x0, bn);
    be_->Upload(targets_.data(), targets, steps * bn);
  }
  // Forward: s_k+1 = s_k + tendency(s_k), every sample at once; each application's loss and its gradient
  // in s_k+1 (dloss_[k], [B, tile]). Targets are [B, K, tile]: sample b's truth after application k.
  double loss = 0;
  for (int64_t k = 0; k < steps; ++k) {
    RETURN_IF_ERROR(Forward(passes_[k], state_.data()));
    for (int64_t b = 0; b < batch; ++b) {
      loss += be_->WeightedSquaredError(state_.data() + b * n, tendency_.data() + b * n,
                                        targets_.data() + (b * steps + k) * n, lat_w_.data(), ch_w_.data(),
                                        tile_.channels, tile_.height, tile_.width, scale,
                                        dloss_.data() + (k * batch + b) * n);
    }
    be_->Axpy(1.0f, tendency_.data(), state_.data(), bn);
  }
  // Backward, last application first: g = dL/ds_k+1 collects its own loss and, through s_k+2 = s_k+1 +
  // tendency(s_k+1), what the later applications send back: g_k = dloss_k + g_k+1 + J_k+1^T g_k+1.
  be_->Fill(dstate_.data(), bn, 0.0f);
  for (int64_t k = steps - 1; k >= 0; --k) {
    be_->Axpy(1.0f, dloss_.data() + k * bn, dstate_.data(), bn);
    RETURN_IF_ERROR(Backward(passes_[k], dstate_.data(), k > 0 ? dinput_.data() : nullptr, k == 0 ? &final : nullptr));
    if (k > 0) be_->Axpy(1.0f, dinput_.data(), dstate_.data(), bn);
  }
  return loss;
}

Status WeatherMixer::Predict(const float* x0, float* tendency, int64_t batch) {
  if (static_w_ && !static_set_) return FailedPreconditionError("the model has static channels: SetStatic first");
  if (batch < 1) return InvalidArgumentError("a batch needs at least one sample");
  RETURN_IF_ERROR(Allocating("activations for the batch", [&] {
    SetBatch(batch);
    if (passes_.empty()) passes_.push_back(MakePass());
  }));
  ConvertWeights();
  be_->Upload(state_.data(), x0, batch * tile_.size());
  RETURN_IF_ERROR(Forward(passes_[0], state_.data()));
  be_->Download(tendency, tendency_.data(), batch * tile_.size());
  return OkStatus();
}

}  // namespace jigsaw::train
