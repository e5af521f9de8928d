// Checks jigsaw's trainer against the PyTorch oracle's file (tests/train/oracle.py), on whatever job it
// is started in: one process, or mpirun -np (replicas * s^2) for an s x s mesh. Every rank checks its own
// blocks against the oracle's global tensors, so every mesh is compared with the same reference (and so
// with the 1-rank run). Tolerances (float32): loss, every gradient, the gradient norm and the weights after
// the oracle's AdamW steps within a relative error of 1e-4 (max |jigsaw - torch| / max |torch| per
// tensor). Also: replicated vector copies bit-identical, the same losses bit for bit when the steps are
// run again with activation recomputation and without overlapped exchanges, and GEMM FLOPs and bytes sent equal on every rank and equal to
// the closed form.
//   oracle_check ORACLE.safetensors S|LATxLON [BACKEND] [TOLERANCE] [WEIGHT_TOLERANCE | -]
// The second argument is the run's domain grid (S: 1 x S), on an s x s mesh with s = LAT LON. The oracle's
// token weights are by patch position and it knows no grid: every grid is checked against the same file.
// BACKEND is cpu (default), cpu:bf16, cuda, cuda:tf32 or cuda:bf16; TOLERANCE (default 1e-4) applies to the loss,
// the gradients and their norm: lower-precision products need more (TF32 1e-3, bf16 2e-2).
// The weights after AdamW steps may be given a looser tolerance for larger models: Adam divides by
// sqrt(v), so an entry whose gradient is at rounding level moves by an amount set by that rounding, in
// torch as here (seen: 1.8e-4 on a 3-layer D=64 model whose every gradient matched to 8e-7). With TF32 or
// bf16 products the smallest gradients change sign and their weights move by +-lr: "-" compares no
// weights (seen up to 0.18 relative), leaving the loss of every step and the gradients to the tolerance.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#ifdef JIGSAW_HAVE_MPI
#include <mpi.h>
#endif

#include "tests/train/oracle_file.h"
#include "train/latitude_weights.h"
#include "train/trainer.h"

using namespace jigsaw;
using namespace jigsaw::train;

namespace {

int failures = 0;
int64_t world_rank = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "rank %lld: FAIL %s\n", static_cast<long long>(world_rank), what.c_str());
  }
}

// max |got - want| / max |want|.
double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  }
  return diff / scale;
}

// The tiles of this rank for samples [first, first + count) of a global [B, C, H, W] tensor (C: channels,
// the model's unless given).
std::vector<float> CutTiles(const std::vector<float>& global, const ModelConfig& c, const TileShape& t, int64_t first,
                            int64_t count, int64_t channels = -1) {
  if (channels < 0) channels = c.channels;
  std::vector<float> out;
  for (int64_t b = first; b < first + count; ++b)
    for (int64_t k = 0; k < t.channels; ++k)
      for (int64_t y = 0; y < t.height; ++y) {
        const float* row = global.data() + ((b * channels + t.channel0 + k) * c.height + t.row0 + y) * c.width + t.col0;
        out.insert(out.end(), row, row + t.width);
      }
  return out;
}

// Closed form of the products of one application of the model to B samples at once (docs/parallelism.md's kernels),
// as (kind, M, K, N): the samples' tokens are the rows (T B) of every product but the token mix's, whose
// columns are the samples' features (D B).
struct Product {
  char kind;
  int64_t m, k, n;
};
std::vector<Product> ModelProducts(const ModelConfig& c, int64_t B) {
  const int64_t T = c.tokens(), D = c.dim, F = c.features(), Hs = c.token_hidden, Hf = c.channel_hidden;
  const int64_t TB = T * B, DB = D * B;
  std::vector<Product> p = {{'N', TB, F, D}, {'N', TB, D, F}, {'T', D, TB, F}, {'n', TB, F, D}, {'T', F, TB, D}};
  if (const int64_t Fs = c.static_features(); Fs > 0) {
    p.push_back({'N', TB, Fs, D});  // X_s W_s
    p.push_back({'T', Fs, TB, D});  // dW_s = X_s^T dz
  }
  for (int64_t l = 0; l < c.depth; ++l) {
    for (Product q : std::vector<Product>{{'T', Hs, T, DB},
                                          {'T', T, Hs, DB},
                                          {'N', TB, D, Hf},
                                          {'N', TB, Hf, D},
                                          {'T', Hf, TB, D},
                                          {'n', TB, D, Hf},
                                          {'T', D, TB, Hf},
                                          {'n', TB, Hf, D},
                                          {'n', Hs, DB, T},
                                          {'N', Hs, T, DB},
                                          {'n', T, DB, Hs},
                                          {'N', T, Hs, DB}})
      p.push_back(q);
  }
  return p;  // 'N' = NN, 'n' = NT, 'T' = TN
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 6) {
    std::fprintf(stderr, "usage: oracle_check ORACLE.safetensors S|LATxLON [BACKEND] [TOLERANCE] [WEIGHT_TOLERANCE]\n");
    return 2;
  }
  std::unique_ptr<TensorCommunicator> world = NewLocalCommunicator();
#ifdef JIGSAW_HAVE_MPI
  MPI_Init(&argc, &argv);
  world = std::move(NewMpiCommunicator().value());
#endif
  world_rank = world->rank();
  // The run's domain grid: "S" (1 x S, the mesh s x s) or "LATxLON"; the oracle knows none.
  const std::string grid_text = argv[2];
  DomainGrid grid{1, std::stoll(grid_text)};
  if (const size_t x = grid_text.find('x'); x != std::string::npos)
    grid = {std::stoll(grid_text.substr(0, x)), std::stoll(grid_text.substr(x + 1))};
  const int64_t s = grid.parts();
  const testing::OracleFile f(argv[1]);
  auto Floats = [&](const testing::OracleFile& file, const std::string& name) { return file.Floats(name); };
  ModelConfig mc;
  std::tie(mc.height, mc.width) = f.Pair("grid");
  std::tie(mc.patch_h, mc.patch_w) = f.Pair("patch");
  mc.channels = f.Int("channels");
  mc.dim = f.Int("dim");
  mc.depth = f.Int("depth");
  mc.token_hidden = f.Int("token_hidden");
  mc.channel_hidden = f.Int("channel_hidden");
  mc.static_channels = f.Int("statics");
  OptimizerConfig oc;
  oc.lr = f.Float("lr");
  oc.min_lr = f.Float("min_lr");
  oc.embed_lr_scale = f.Float("embed_lr_scale");
  oc.warmup_steps = f.Int("warmup");
  oc.total_steps = f.Int("total_steps");
  oc.weight_decay = f.Float("weight_decay");
  oc.clip = f.Float("clip");
  oc.beta1 = f.Float("beta1");
  oc.beta2 = f.Float("beta2");
  oc.eps = f.Float("eps");
  const int64_t batch = f.Int("batch"), steps = f.Int("steps"), rollout = f.Int("rollout_steps");

  auto mesh = SplitMesh(world.get(), s);
  if (!mesh.ok()) {
    std::fprintf(stderr, "%s\n", mesh.status().ToString().c_str());
    return 2;
  }
  const MeshPosition pos = mesh->pos;
  if (batch % pos.replicas != 0) {
    std::fprintf(stderr, "batch %lld does not split over %lld replicas\n", (long long)batch, (long long)pos.replicas);
    return 2;
  }
  auto made = NewBackend(argc >= 4 ? argv[3] : "cpu", 1);
  const double tolerance = argc >= 5 ? std::stod(argv[4]) : 1e-4;
  const bool compare_weights = !(argc == 6 && std::string(argv[5]) == "-");
  const double weight_tolerance = argc == 6 && compare_weights ? std::stod(argv[5]) : tolerance;
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<Backend> backend = std::move(*made);
  const std::vector<float> losses = Floats(f, "losses"), norms = Floats(f, "grad_norm");
  const std::vector<float> lat = Floats(f, "lat");
  const std::vector<float> x0 = Floats(f, "x0"), x1 = Floats(f, "x1");

  // Seeded initialisation is defined on the global tensors: this rank's blocks equal the blocks cut from a
  // whole model made alone in this process from the same seed, bit for bit.
  {
    std::unique_ptr<TensorCommunicator> alone = NewLocalCommunicator();
    auto single = SplitMesh(alone.get(), 1);
    auto whole = WeatherMixer::Create(mc, backend.get(), &*single, 42);
    auto mine = WeatherMixer::Create(mc, backend.get(), &*mesh, 42, grid);
    Check(whole.ok() && mine.ok(), "seeded models");
    for (auto& p : (*mine)->parameters()) {
      const std::vector<float> got = p.value.Download(), want = p.Cut((*whole)->Find(p.name)->value.Download());
      Check(std::memcmp(got.data(), want.data(), got.size() * 4) == 0,
            "seeded initial " + p.name + " differs from the 1-rank model's");
    }
  }

  // Two runs of the same steps from the same weights: the second must repeat the first bit for bit.
  std::vector<double> run_losses[2];
  for (int run = 0; run < 2; ++run) {
    auto trainer = Trainer::Create(mc, oc, backend.get(), &*mesh, 1, grid);
    if (!trainer.ok()) {
      std::fprintf(stderr, "%s\n", trainer.status().ToString().c_str());
      return 2;
    }
    WeatherMixer& model = (*trainer)->model();
    // The second run recomputes activations in the backward and waits for each product step's exchanges
    // before the next (the first overlaps them with the GEMMs): it must still repeat the first bit for bit.
    Check(model.SetRecompute(run == 1).ok(), "SetRecompute");
    model.matmul().set_overlap(run == 0);
    for (auto& p : model.parameters()) p.value.Upload(p.Cut(Floats(f, "param/" + p.name)));
    if (!model.SetLossWeights(LatitudeWeights(std::vector<double>(lat.begin(), lat.end())), Floats(f, "channel_weight"))
             .ok())
      return 2;
    if (mc.static_channels > 0) {
      const std::vector<float> st = CutTiles(Floats(f, "static"), mc, model.static_tile(), 0, 1, mc.static_channels);
      Check(model.SetStatic(st.data()).ok(), "SetStatic");
    }
    const int64_t per = batch / pos.replicas;
    std::vector<float> t0 = CutTiles(x0, mc, model.tile(), pos.replica * per, per);
    std::vector<float> t1 =
        CutTiles(x1, mc, model.tile(), pos.replica * per * rollout, per * rollout);  // [B, K] samples
    TileBatch tb{per, t0.data(), t1.data(), false, rollout};
    if (run == 0) {
      auto loss = (*trainer)->ComputeGradients(tb);
      Check(loss.ok(), "ComputeGradients: " + loss.status().ToString());
      const double e = std::abs(*loss - losses[0]) / losses[0];
      Check(e <= tolerance, "loss " + std::to_string(*loss) + " vs torch " + std::to_string(losses[0]));
      double worst = 0;
      for (auto& p : model.parameters()) {
        if (p.name.ends_with("token_b2")) {
          // The token-mix output bias adds a constant to a token's features, which every following
          // LayerNorm removes: its true gradient is exactly 0, torch's and ours rounding noise (~1e-9).
          double most = 0;
          for (float g : p.grad.Download()) most = std::max(most, static_cast<double>(std::abs(g)));
          for (float g : p.Cut(Floats(f, "grad/" + p.name))) most = std::max(most, static_cast<double>(std::abs(g)));
          Check(most <= 1e-6, "gradient of " + p.name + " is " + std::to_string(most) + ", not 0 to rounding");
          continue;
        }
        const double ge = RelError(p.grad.Download(), p.Cut(Floats(f, "grad/" + p.name)));
        worst = std::max(worst, ge);
        Check(ge <= tolerance, "gradient of " + p.name + ": relative error " + std::to_string(ge));
      }
      auto norm = (*trainer)->GradientNorm();
      Check(std::abs(*norm - norms[0]) / norms[0] <= tolerance,
            "gradient norm " + std::to_string(*norm) + " vs torch " + std::to_string(norms[0]));
      if (world_rank == 0) std::printf("loss %.7g (torch %.7g), worst gradient error %.2e\n", *loss, losses[0], worst);
    }
    for (int64_t k = 0; k < steps; ++k) {
      auto r = (*trainer)->Step(tb);
      Check(r.ok(), "Step: " + r.status().ToString());
      run_losses[run].push_back(r->loss);
      Check(
          std::abs(r->loss - losses[k]) / losses[k] <= tolerance,
          "step " + std::to_string(k) + " loss " + std::to_string(r->loss) + " vs torch " + std::to_string(losses[k]));
      Check(std::abs(r->grad_norm - norms[k]) / norms[k] <= tolerance, "step " + std::to_string(k) + " norm " +
                                                                           std::to_string(r->grad_norm) + " vs torch " +
                                                                           std::to_string(norms[k]));
      if (run == 0 && k == 0) {
        // FLOPs and bytes: the closed form of the model's products, the same on every rank. Broadcast blocks
        // travel in the backend's operand format (2 bytes with bf16 products), partial sums in float32.
        const double ob = backend->operand_bytes();
        double flops = 0, bytes = 0;
        // The whole batch (per samples) goes through the model at once, in each of the rollout's applications.
        for (const Product& q : ModelProducts(mc, per)) {
          flops += 2.0 * q.m * q.k * q.n / (s * s);
          const double moved = q.kind == 'N'   ? ob * (q.m * q.k + q.k * q.n)
                               : q.kind == 'n' ? ob * q.n * q.k + 4.0 * q.m * q.n
                                               : ob * q.k * q.m + 4.0 * q.m * q.n;
          bytes += (s - 1) * moved / (s * s);
        }
        flops *= rollout;
        bytes *= rollout;
        // Every application but the first also sends its input's gradient back: dX = dz W_e^T (NT).
        const double TB = double(mc.tokens()) * per, D = mc.dim, F = mc.features(), extra = rollout - 1;
        flops += extra * 2.0 * TB * D * F / (s * s);
        bytes += extra * (s - 1) * (ob * F * D + 4.0 * TB * F) / (s * s);
        Check(static_cast<double>(r->gemm_flops) == flops,
              "GEMM FLOPs " + std::to_string(r->gemm_flops) + " vs closed form " + std::to_string(flops));
        Check(static_cast<double>(r->bytes_sent) == bytes,
              "bytes sent " + std::to_string(r->bytes_sent) + " vs closed form " + std::to_string(bytes));
        if (world_rank == 0)
          std::printf("per rank per step: %lld GEMM FLOPs, %lld bytes sent\n", (long long)r->gemm_flops,
                      (long long)r->bytes_sent);
      }
    }
    if (run == 0) {
      double worst = 0;
      for (auto& p : model.parameters()) {
        // A parameter with no true gradient (b_t2, above) moves by Adam's normalised rounding noise, in
        // torch as here: its weights cannot be compared, only its gradient (~0, checked above).
        if (p.name.ends_with("token_b2") || !compare_weights) continue;
        const double we = RelError(p.value.Download(), p.Cut(Floats(f, "after/" + p.name)));
        worst = std::max(worst, we);
        Check(we <= weight_tolerance, "weights of " + p.name + " after " + std::to_string(steps) +
                                          " steps: relative error " + std::to_string(we));
        // Replicated copies: rank 0 of the replicated axis broadcasts its copy; every copy must equal it bit for bit.
        if (p.layout != Layout::kMatrix) {
          TensorCommunicator* axis = p.layout == Layout::kColumnPart ? mesh->col.get() : mesh->row.get();
          std::vector<float> mine = p.value.Download(), first = mine;
          Check(axis->BroadcastData(first.data(), static_cast<int64_t>(first.size()), 0).ok(), "broadcast");
          Check(std::memcmp(mine.data(), first.data(), mine.size() * 4) == 0,
                "replicated copies of " + p.name + " differ");
        }
      }
      if (world_rank == 0 && compare_weights)
        std::printf("after %lld AdamW steps: worst weight error %.2e\n", (long long)steps, worst);
    }
  }
  Check(run_losses[0] == run_losses[1],
        "the same steps gave different losses on a second run (which recomputes activations and does not "
        "overlap exchanges)");
  // Every rank's verdict reaches rank 0.
  Status verdict =
      AllOk(world.get(), failures ? InternalError(std::to_string(failures) + " checks failed") : OkStatus());
  if (world_rank == 0)
    std::printf("%s: %s\n", verdict.ok() ? "PASS" : "FAIL", verdict.ok() ? "all checks" : verdict.message().c_str());
#ifdef JIGSAW_HAVE_MPI
  mesh = Status(StatusCode::kInternal, "released");
  world.reset();
  MPI_Finalize();
#endif
  return verdict.ok() ? 0 : 1;
}
