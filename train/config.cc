#include "train/config.h"

#include <cmath>
#include <cstdio>

#include "parallel/split.h"

namespace jigsaw::train {
namespace {

std::string N(int64_t v) { return std::to_string(v); }

}  // namespace

Status ModelConfig::Validate(int64_t s, DomainGrid grid) const {
  const int64_t lat_parts = grid.lat, lon_parts = grid.lon;
  if (channels < 1 || height < 1 || width < 1 || patch_h < 1 || patch_w < 1 || dim < 1 || depth < 0 ||
      token_hidden < 1 || channel_hidden < 1 || lat_parts < 1 || lon_parts < 1) {
    return InvalidArgumentError("model: every size must be positive (channels " + N(channels) + ", grid " + N(height) +
                                "x" + N(width) + ", patch " + N(patch_h) + "x" + N(patch_w) + ", dim " + N(dim) +
                                ", depth " + N(depth) + ", token_hidden " + N(token_hidden) + ", channel_hidden " +
                                N(channel_hidden) + ")");
  }
  // Every size is a BLAS dimension (an int) and the weights must be countable: refused before any allocation.
  constexpr int64_t kMaxSize = (int64_t{1} << 31) - 1;
  for (const auto& [name, v] : {std::pair{"channels", channels},
                                {"height", height},
                                {"width", width},
                                {"dim", dim},
                                {"depth", depth},
                                {"token_hidden", token_hidden},
                                {"channel_hidden", channel_hidden},
                                {"static_channels", static_channels}}) {
    if (v > kMaxSize) return InvalidArgumentError(std::string("model: ") + name + " " + N(v) + " is over 2^31 - 1");
  }
  const double weights = double(channels + static_channels) * patch_h * patch_w * dim * 2 +
                         double(depth) * (2.0 * tokens() * token_hidden + 2.0 * dim * channel_hidden);
  if (weights * 16 > 1e15) {  // value, gradient and two moments in float32: a petabyte
    return InvalidArgumentError("model: " + std::to_string(weights) +
                                " weights (dim, token_hidden, channel_hidden, depth) would take " +
                                std::to_string(weights * 16 / 1e12) + " TB with their gradients and Adam moments");
  }
  if (lat_parts * lon_parts != s) {
    return InvalidArgumentError("model: a " + N(s) + "x" + N(s) + " mesh needs " + N(s) +
                                " domain parts, but the domain grid " + N(lat_parts) + "x" + N(lon_parts) + " has " +
                                N(lat_parts * lon_parts));
  }
  // Every domain part holds the same number of whole patches.
  if (height % lat_parts != 0 || (height / lat_parts) % patch_h != 0) {
    return InvalidArgumentError("model: " + N(height) + " latitude rows do not split into " + N(lat_parts) +
                                " parts of whole " + N(patch_h) +
                                "-row patches: shard the store again with jigsaw-shard run --lat-crop N, which drops "
                                "the N southernmost rows (721 rows: --lat-crop 1 gives 720)");
  }
  if (width % lon_parts != 0 || (width / lon_parts) % patch_w != 0) {
    return InvalidArgumentError("model: " + N(width) + " longitude columns do not split into " + N(lon_parts) +
                                " parts of whole " + N(patch_w) + "-column patches");
  }
  RETURN_IF_ERROR(CheckSplit(channels, s, "channels").Annotate("model"));
  if (static_channels < 0) return InvalidArgumentError("model: static_channels " + N(static_channels) + " < 0");
  if (static_channels > 0) RETURN_IF_ERROR(CheckSplit(static_channels, s, "static channels").Annotate("model"));
  RETURN_IF_ERROR(CheckSplit(dim, s, "dim").Annotate("model"));
  RETURN_IF_ERROR(CheckSplit(token_hidden, s, "token_hidden").Annotate("model"));
  RETURN_IF_ERROR(CheckSplit(channel_hidden, s, "channel_hidden").Annotate("model"));
  return OkStatus();
}

Result<DomainGrid> RunDomainGrid(const ModelConfig& c, int64_t s, int64_t lat, int64_t lon, int64_t ch) {
  if (s == 1) return DomainGrid{};
  const std::string grid = N(lat) + "x" + N(lon) + "x" + N(ch);
  if (lat * lon != s || ch != s) {
    return InvalidArgumentError("the store's tile grid " + grid + " does not fit a " + N(s) + "x" + N(s) +
                                " mesh (it needs LAT x LON = " + N(s) + " domain parts and CH = " + N(s) +
                                " channel groups)");
  }
  // Each tile must hold whole patches: the token mix mixes patches, never parts of one.
  if (c.height % lat != 0 || (c.height / lat) % c.patch_h != 0 || c.width % lon != 0 ||
      (c.width / lon) % c.patch_w != 0) {
    return InvalidArgumentError("the store's tile grid " + grid + " cuts the " + N(c.height) + "x" + N(c.width) +
                                " grid into tiles of " + N(c.height) + "/" + N(lat) + " x " + N(c.width) + "/" +
                                N(lon) + " pixels, which do not hold whole " + N(c.patch_h) + "x" + N(c.patch_w) +
                                " patches of the model (shard the store with a tile grid that does, e.g. crop "
                                "721 -> 720 rows)");
  }
  return DomainGrid{lat, lon};
}

DomainGrid LegacyDomainGrid(const nlohmann::json& model) {
  DomainGrid g;
  if (model.is_object()) {
    auto part = [&](const char* key) -> int64_t {
      const auto it = model.find(key);
      if (it == model.end()) return 1;
      return it->is_number_integer() ? it->get<int64_t>() : 0;  // 0: refused by the caller
    };
    g.lat = part("lat_parts");
    g.lon = part("lon_parts");
  }
  return g;
}

ModelSplits SplitModel(const ModelConfig& c, int64_t s) {
  ModelSplits m;
  // Tokens: the domain parts in order (s equal parts; on 1 rank, one part of all).
  m.tokens = SplitBounds(c.tokens(), s);
  m.dim = SplitBounds(c.dim, s);
  m.token_hidden = SplitBounds(c.token_hidden, s);
  m.channel_hidden = SplitBounds(c.channel_hidden, s);
  m.channels = SplitBounds(c.channels, s);
  // Token features follow the channel groups, so that block (i, j) of the input is the data tile.
  m.features = m.channels;
  for (auto& b : m.features) b *= c.patch_pixels();
  if (c.static_channels > 0) {
    m.static_channels = SplitBounds(c.static_channels, s);
    m.static_features = m.static_channels;
    for (auto& b : m.static_features) b *= c.patch_pixels();
  }
  return m;
}

std::vector<GemmShape> StepGemmShapes(const ModelConfig& c) {
  const int64_t T = c.tokens(), D = c.dim, F = c.features(), Hs = c.token_hidden, Hf = c.channel_hidden;
  // NN C[M,N] = A[M,K] B[K,N]; NT A[M,K] B[N,K]^T; TN A[K,M]^T B[K,N] (block_matmul.h).
  auto nn = [](int64_t m, int64_t k, int64_t n) { return GemmShape{false, false, m, n, k}; };
  auto nt = [](int64_t m, int64_t k, int64_t n) { return GemmShape{false, true, m, n, k}; };
  auto tn = [](int64_t m, int64_t k, int64_t n) { return GemmShape{true, false, m, n, k}; };
  const int64_t Fs = c.static_features();
  std::vector<GemmShape> g = {nn(T, F, D)};
  if (Fs > 0) g.push_back(nn(T, Fs, D));
  for (int64_t l = 0; l < c.depth; ++l) {
    for (GemmShape s : {tn(Hs, T, D), tn(T, Hs, D), nn(T, D, Hf), nn(T, Hf, D)}) g.push_back(s);
  }
  for (GemmShape s : {nn(T, D, F), tn(D, T, F), nt(T, F, D)}) g.push_back(s);
  for (int64_t l = 0; l < c.depth; ++l) {
    for (GemmShape s : {tn(Hf, T, D), nt(T, D, Hf), tn(D, T, Hf), nt(T, Hf, D), nt(Hs, D, T), nn(Hs, T, D),
                        nt(T, D, Hs), nn(T, Hs, D)})
      g.push_back(s);
  }
  g.push_back(tn(F, T, D));
  if (Fs > 0) g.push_back(tn(Fs, T, D));
  return g;
}

std::vector<GemmShape> RankGemmShapes(const ModelConfig& c, int64_t s) {
  std::vector<GemmShape> g = StepGemmShapes(c);
  auto cut = [s](int64_t x) { return (x + s - 1) / s; };
  for (GemmShape& shape : g) {
    shape.m = cut(shape.m);
    shape.n = cut(shape.n);
    shape.k = cut(shape.k);
  }
  return g;
}

nlohmann::json ModelConfig::ToJson() const {
  nlohmann::json j = {{"channels", channels},
                      {"height", height},
                      {"width", width},
                      {"patch_h", patch_h},
                      {"patch_w", patch_w},
                      {"dim", dim},
                      {"depth", depth},
                      {"token_hidden", token_hidden},
                      {"channel_hidden", channel_hidden},
                      {"ln_eps", ln_eps}};
  if (static_channels > 0) j["static_channels"] = static_channels;  // absent: none (configs before it)
  return j;
}

Result<ModelConfig> ModelConfig::FromJson(const nlohmann::json& j) {
  ModelConfig c;
  try {
    c.channels = j.at("channels");
    c.height = j.at("height");
    c.width = j.at("width");
    c.patch_h = j.at("patch_h");
    c.patch_w = j.at("patch_w");
    c.dim = j.at("dim");
    c.depth = j.at("depth");
    c.token_hidden = j.at("token_hidden");
    c.channel_hidden = j.at("channel_hidden");
    c.ln_eps = j.value("ln_eps", 1e-5f);
    c.static_channels = j.value("static_channels", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("model config: ") + e.what());
  }
  return c;
}

Status OptimizerConfig::Validate() const {
  struct Range {
    const char* key;
    double value, low, high;
    bool low_open, high_open;
  };
  const double inf = INFINITY;
  const Range ranges[] = {{"lr", lr, 0, inf, true, true},
                          {"min_lr", min_lr, 0, inf, false, true},
                          {"embed_lr_scale", embed_lr_scale, 0, inf, true, true},
                          {"warmup_steps", double(warmup_steps), 0, inf, false, true},
                          {"total_steps", double(total_steps), 1, inf, false, true},
                          {"beta1", beta1, 0, 1, false, true},
                          {"beta2", beta2, 0, 1, false, true},
                          {"eps", eps, 0, inf, true, true},
                          {"weight_decay", weight_decay, 0, inf, false, true},
                          {"clip", clip, 0, inf, false, true}};
  for (const Range& r : ranges) {
    // Values are float32: 1e39 is infinite there, and 0.99999999 is 1.
    const bool ok = std::isfinite(r.value) && (r.low_open ? r.value > r.low : r.value >= r.low) &&
                    (r.high_open ? r.value < r.high : r.value <= r.high);
    if (!ok) {
      char text[64];
      std::snprintf(text, sizeof(text), "%g", r.value);
      return InvalidArgumentError(std::string("optimizer: ") + r.key + " " + text + " is not in " +
                                  (r.low_open ? "(" : "[") + N(int64_t(r.low)) + ", " +
                                  (std::isinf(r.high) ? "inf" : N(int64_t(r.high))) + (r.high_open ? ")" : "]") +
                                  " (as a float32)");
    }
  }
  return OkStatus();
}

nlohmann::json OptimizerConfig::ToJson() const {
  return {{"lr", lr},
          {"min_lr", min_lr},
          {"embed_lr_scale", embed_lr_scale},
          {"warmup_steps", warmup_steps},
          {"total_steps", total_steps},
          {"beta1", beta1},
          {"beta2", beta2},
          {"eps", eps},
          {"weight_decay", weight_decay},
          {"clip", clip}};
}

Result<OptimizerConfig> OptimizerConfig::FromJson(const nlohmann::json& j) {
  OptimizerConfig o;
  try {
    o.lr = j.value("lr", o.lr);
    o.min_lr = j.value("min_lr", o.min_lr);
    o.embed_lr_scale = j.value("embed_lr_scale", o.embed_lr_scale);
    o.warmup_steps = j.value("warmup_steps", o.warmup_steps);
    o.total_steps = j.value("total_steps", o.total_steps);
    o.beta1 = j.value("beta1", o.beta1);
    o.beta2 = j.value("beta2", o.beta2);
    o.eps = j.value("eps", o.eps);
    o.weight_decay = j.value("weight_decay", o.weight_decay);
    o.clip = j.value("clip", o.clip);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("optimizer config: ") + e.what());
  }
  return o;
}

float LearningRate(const OptimizerConfig& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<float>(step + 1) / static_cast<float>(o.warmup_steps);
  const double span = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  return static_cast<float>(o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace jigsaw::train
