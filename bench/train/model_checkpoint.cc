// Times a WeatherMixer checkpoint's save and load on an s x s mesh (mpirun -np s^2): every rank's blocks of
// every parameter and its Adam moments, saved by one saver for the run, as jigsaw-train keeps it
// (StartModelCheckpoint, then Wait: written, synced, committed), and loaded back (LoadModelCheckpoint)
// `--repeats` times; prints one JSON line from rank 0 with the median seconds of each (the slowest rank's,
// every repeat) and the bytes. bench/RESULTS.md compares the stored layout's times with those of the layout
// before it (the same driver built at commit c665c31).
//   mpirun -np 4 model_checkpoint --dir /tmp/ck --s 2 --grid 180x360 --patch 4x4 --dim 256 --depth 4
//          --token-hidden 1024 --channel-hidden 1024 --channels 8 --repeats 5
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "jobs/model_checkpoint.h"
#include "storage/kvstore/kvstore.h"

using namespace jigsaw;
using namespace jigsaw::train;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Die(const Status& s) {
  std::fprintf(stderr, "model_checkpoint: %s\n", s.ToString().c_str());
  MPI_Abort(MPI_COMM_WORLD, 1);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ModelConfig mc{.channels = 8, .height = 180, .width = 360, .patch_h = 4, .patch_w = 4, .dim = 256, .depth = 4,
                 .token_hidden = 1024, .channel_hidden = 1024};
  std::string dir = "/tmp/bench-model-ckpt";
  int64_t s = 2, repeats = 5;
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string k = argv[a], v = argv[a + 1];
    auto pair = [&](int64_t* x, int64_t* y) { std::sscanf(v.c_str(), "%ldx%ld", x, y); };
    if (k == "--dir") dir = v;
    else if (k == "--s") s = std::stoll(v);
    else if (k == "--grid") pair(&mc.height, &mc.width);
    else if (k == "--patch") pair(&mc.patch_h, &mc.patch_w);
    else if (k == "--dim") mc.dim = std::stoll(v);
    else if (k == "--depth") mc.depth = std::stoll(v);
    else if (k == "--token-hidden") mc.token_hidden = std::stoll(v);
    else if (k == "--channel-hidden") mc.channel_hidden = std::stoll(v);
    else if (k == "--channels") mc.channels = std::stoll(v);
    else if (k == "--repeats") repeats = std::stoll(v);
  }
  auto world = NewMpiCommunicator();
  if (!world.ok()) return Die(world.status());
  auto comms = SplitMesh(world->get(), s);
  if (!comms.ok()) return Die(comms.status());
  auto be = NewCpuBackend(1);
  const DomainGrid grid{1, s};
  auto model = WeatherMixer::Create(mc, be.get(), &*comms, 1, grid);
  if (!model.ok()) return Die(model.status());
  const bool leader = (*world)->rank() == 0;
  if (leader) std::filesystem::remove_all(dir);
  (void)(*world)->Barrier();
  auto root = OpenKvStore(dir);
  if (!root.ok()) return Die(root.status());
  double bytes = 0;
  for (const auto& p : (*model)->parameters()) bytes += 3.0 * 4 * p.local_size();
  std::vector<double> save_s, load_s;
  AsyncCheckpointSaver saver;  // one for the run, as jigsaw-train keeps it (its tile buffers are reused)
  for (int64_t r = 0; r < repeats; ++r) {
    (void)(*world)->Barrier();
    auto t0 = std::chrono::steady_clock::now();
    {
      Status st = StartModelCheckpoint(&saver, root->get(), r + 1, **model, {{"model", mc.ToJson()}},
                                       comms->group.get());
      if (!st.ok()) return Die(st);
      if (Status w = saver.Wait(); !w.ok()) return Die(w);
    }
    (void)(*world)->Barrier();
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    save_s.push_back(t);
    t0 = std::chrono::steady_clock::now();
    auto loaded = LoadModelCheckpoint(root->get(), "", **model, /*with_moments=*/true);
    if (!loaded.ok()) return Die(loaded.status());
    (void)(*world)->Barrier();
    load_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  float total = static_cast<float>(bytes);
  (void)(*world)->AllReduceSum(&total, 1);
  if (leader) {
    std::printf("{\"s\": %ld, \"bytes\": %.0f, \"save_s\": %.4f, \"load_s\": %.4f, \"repeats\": %ld}\n", s, total,
                Median(save_s), Median(load_s), repeats);
  }
  model->reset();
  comms = Status(StatusCode::kInternal, "released");
  world->reset();
  MPI_Finalize();
  return 0;
}
