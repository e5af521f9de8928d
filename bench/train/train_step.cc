// Times jigsaw's training step on one rank: WeatherMixer of the given size, seeded weights, a random
// batch, `--steps` timed steps after `--warmup`; prints one JSON line (median step seconds, GEMM FLOPs per
// step, FLOP/s). bench/bench_train.py runs it beside the PyTorch oracle's step on the same config.
//   train_step --backend cpu|cuda --channels C --grid HxW --patch PxP --dim D --depth L
//              --token-hidden Hs --channel-hidden Hf --batch B --steps N --warmup W --threads T
//              [--recompute 1] [--micro-batch M]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "train/gemm_rate.h"
#include "train/trainer.h"

using namespace jigsaw;
using namespace jigsaw::train;

int main(int argc, char** argv) {
  ModelConfig mc{.channels = 8,
                 .height = 32,
                 .width = 64,
                 .patch_h = 4,
                 .patch_w = 4,
                 .dim = 256,
                 .depth = 2,
                 .token_hidden = 256,
                 .channel_hidden = 1024};
  std::string backend_name = "cpu";
  int64_t batch = 2, steps = 5, warmup = 1, threads = 0, recompute = 0, micro_batch = 0;
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string k = argv[a], v = argv[a + 1];
    auto pair = [&](int64_t* x, int64_t* y) { std::sscanf(v.c_str(), "%ldx%ld", x, y); };
    if (k == "--backend")
      backend_name = v;
    else if (k == "--channels")
      mc.channels = std::stoll(v);
    else if (k == "--grid")
      pair(&mc.height, &mc.width);
    else if (k == "--patch")
      pair(&mc.patch_h, &mc.patch_w);
    else if (k == "--dim")
      mc.dim = std::stoll(v);
    else if (k == "--depth")
      mc.depth = std::stoll(v);
    else if (k == "--token-hidden")
      mc.token_hidden = std::stoll(v);
    else if (k == "--channel-hidden")
      mc.channel_hidden = std::stoll(v);
    else if (k == "--batch")
      batch = std::stoll(v);
    else if (k == "--steps")
      steps = std::stoll(v);
    else if (k == "--warmup")
      warmup = std::stoll(v);
    else if (k == "--threads")
      threads = std::stoll(v);
    else if (k == "--recompute")
      recompute = std::stoll(v);
    else if (k == "--micro-batch")
      micro_batch = std::stoll(v);
    else {
      std::fprintf(stderr, "train_step: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  auto backend = NewBackend(backend_name, static_cast<int>(threads));
  if (!backend.ok()) {
    std::fprintf(stderr, "train_step: %s\n", backend.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<TensorCommunicator> world = NewLocalCommunicator();
  auto mesh = SplitMesh(world.get(), 1);
  OptimizerConfig oc;
  const int64_t before = (*backend)->bytes_in_use();
  auto trainer = Trainer::Create(mc, oc, backend->get(), &*mesh, 1);
  if (!trainer.ok()) {
    std::fprintf(stderr, "train_step: %s\n", trainer.status().ToString().c_str());
    return 2;
  }
  if (!(*trainer)->model().SetRecompute(recompute != 0).ok()) return 2;
  (*trainer)->set_micro_batch(micro_batch);
  // Memory: the parameters' state (weights, gradients, two Adam moments; with bf16 products the weights'
  // bf16 copies) and what the model holds after a step (activations, kept for the next; its scratch and the
  // backend's); the step's peak through the backend is compared with their sum.
  int64_t param_bytes = 0;
  for (auto& p : (*trainer)->model().parameters()) param_bytes += 16 * p.local_size() + 4 * p.operand.size();
  int64_t activation_bytes = 0;
  const int64_t tile = (*trainer)->model().tile().size();
  // A cheap pseudo-random batch (a hash per element: GB-sized batches in well under a second).
  std::vector<float> x0(batch * tile), x1(batch * tile);
  auto hash = [](uint64_t i) {
    i = (i ^ (i >> 31)) * 0x7fb5d329728ea185ull;
    i = (i ^ (i >> 27)) * 0x81dadef4bc2dd44dull;
    return static_cast<float>((i ^ (i >> 33)) >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;  // [-1, 1)
  };
  for (size_t i = 0; i < x0.size(); ++i) {
    x0[i] = hash(i);
    x1[i] = x0[i] + 0.1f * hash(i + x0.size());
  }
  // The batch waits on the device, as the peer's does: the step is timed, not the host-to-device copy
  // (the loader's job, overlapped with the step in a training run).
  Tensor d0(backend->get(), batch * tile), d1(backend->get(), batch * tile);
  d0.Upload(x0);
  d1.Upload(x1);
  TileBatch tb{batch, d0.data(), d1.data(), true};
  std::vector<double> times;
  int64_t flops = 0;
  double loss = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = (*trainer)->Step(tb);  // returns after the loss reached the host: the step's work is done
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.ok()) {
      std::fprintf(stderr, "train_step: %s\n", r.status().ToString().c_str());
      return 1;
    }
    if (s >= warmup) times.push_back(dt);
    if (s == 0) activation_bytes = (*backend)->bytes_in_use() - before - param_bytes - 2 * batch * tile * 4;
    flops = r->gemm_flops;
    loss = r->loss;
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const int64_t peak_bytes = (*backend)->peak_bytes() - before;
  // The ceiling: the backend's GEMM alone at the step's own shapes (train/gemm_rate.h).
  const double ceiling = MeasureGemmRate(backend->get(), StepGemmShapes(mc)).flop_per_s();
  std::printf(
      "{\"backend\": \"%s\", \"recompute\": %s, \"step_s\": %.6f, \"gemm_flops\": %ld, \"step_flop_per_s\": %.4e, "
      "\"gemm_ceiling_flop_per_s\": %.4e, \"share_of_ceiling\": %.3f, \"loss\": %.6f, "
      "\"parameter_state_bytes\": %ld, \"activation_bytes\": %ld, \"peak_bytes\": %ld, \"peak_over_needed\": %.3f}\n",
      backend_name.c_str(), recompute ? "true" : "false", median, static_cast<long>(flops), flops / median, ceiling, flops / median / ceiling, loss,
      static_cast<long>(param_bytes), static_cast<long>(activation_bytes), static_cast<long>(peak_bytes),
      double(peak_bytes) / double(param_bytes + activation_bytes));
  return 0;
}
