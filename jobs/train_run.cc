#include "jobs/train_run.h"
#include "jobs/tensorboard.h"

#include <ctime>

#include "base/human.h"
#include "base/version.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <tuple>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "pipeline/grid/tile_grid.h"
#include "pipeline/loader/loader.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/metadata.h"
#include "storage/kvstore/kvstore.h"
#include "train/gemm_rate.h"
#include "train/latitude_weights.h"
#include "jobs/batch_prefetch.h"
#include "jobs/model_checkpoint.h"
#include "jobs/store_facts.h"
#include "jobs/train_config.h"
#include "train/trainer.h"

namespace jigsaw::train {
namespace {

volatile std::sig_atomic_t stop_requested = 0;
void OnStopSignal(int) { stop_requested = 1; }

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The local time of day, "14:05:33", for log lines.
std::string WallClock() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[16];
  std::strftime(text, sizeof(text), "%H:%M:%S", &local);
  return text;
}

// This rank's tile of every sample, batch after batch: one loader for its tile, or on a 1x1 mesh one per
// tile of the store, assembled into whole samples (every loader with the same options yields the same times).
class TileBatches {
 public:
  static Result<std::unique_ptr<TileBatches>> Open(const std::string& url, const StoreFacts& facts, int64_t s,
                                                   int64_t mesh_rank, const LoaderOptions& base,
                                                   const TileShape& tile) {
    std::unique_ptr<TileBatches> t(new TileBatches());
    t->tile_ = tile;
    t->batch_ = base.batch_size;
    t->steps_ = base.lead_steps;
    std::vector<int64_t> ranks;
    if (s == 1) {
      for (int64_t r = 0; r < facts.tiles.num_tiles(); ++r) ranks.push_back(r);
    } else {
      ranks.push_back(mesh_rank);
    }
    for (int64_t r : ranks) {
      LoaderOptions o = base;
      o.rank = r;
      ASSIGN_OR_RETURN(auto loader, Loader::Open(url, o));
      t->loaders_.push_back(std::move(loader));
    }
    return t;
  }

  // x0: [batch, c, h, w] of this rank's tile; x1: [batch, steps, c, h, w], the truth `steps` after x0.
  Status Next(std::vector<float>* x0, std::vector<float>* x1) {
    x0->resize(x0_size());
    x1->resize(x1_size());
    return Next(x0->data(), x1->data());
  }
  int64_t x0_size() const { return batch_ * tile_.size(); }
  int64_t x1_size() const { return batch_ * steps_ * tile_.size(); }
  Status Next(float* x0_data, float* x1_data) {
    const int64_t n = tile_.size();
    std::vector<std::shared_ptr<Batch>> got;
    for (auto& l : loaders_) {
      ASSIGN_OR_RETURN(auto b, l->Next());
      got.push_back(std::move(b));
    }
    {
      std::lock_guard<std::mutex> lock(times_mu_);
      recent_times_[{got[0]->epoch(), got[0]->index()}] = got[0]->times();
      while (recent_times_.size() > 64) recent_times_.erase(recent_times_.begin());
    }
    for (size_t l = 0; l < loaders_.size(); ++l) {
      const auto origin = loaders_[l]->tile_origin(), shape = loaders_[l]->tile_shape();  // [c, lat, lon]
      const float* data = static_cast<const float*>(got[l]->data());
      const int64_t c = shape[0], h = shape[1], w = shape[2], per = c * h * w;
      for (int64_t b = 0; b < batch_; ++b)
        for (int64_t lead = 0; lead <= steps_; ++lead) {
          float* dst = lead ? x1_data + (b * steps_ + lead - 1) * n : x0_data + b * n;
          const float* src = data + (b * (1 + steps_) + lead) * per;
          for (int64_t k = 0; k < c; ++k)
            for (int64_t y = 0; y < h; ++y) {
              // Into the tile's frame: on a 1x1 mesh the tile is the whole sample.
              const int64_t ty = origin[1] + y - tile_.row0, tk = origin[0] + k - tile_.channel0;
              std::memcpy(dst + (tk * tile_.height + ty) * tile_.width + origin[2] - tile_.col0, src + (k * h + y) * w,
                          w * sizeof(float));
            }
        }
    }
    return OkStatus();
  }
  LoaderState state() const { return loaders_.front()->state(); }
  Status Restore(const LoaderState& s) {
    for (auto& l : loaders_) RETURN_IF_ERROR(l->Restore(s));
    return OkStatus();
  }
  int64_t batches_per_epoch() const { return loaders_.front()->batches_per_epoch(); }
  // The input times of a recent batch (epoch, index), as "2020-01-01T00, ..."; "" when no longer known.
  std::string TimesOf(const LoaderState& at) {
    std::lock_guard<std::mutex> lock(times_mu_);
    auto it = recent_times_.find({at.epoch, at.batch});
    if (it == recent_times_.end()) return "";
    std::string text;
    for (int64_t t : it->second) text += (text.empty() ? "" : ", ") + FormatIsoTime(t);
    return text;
  }

 private:
  TileBatches() = default;
  std::mutex times_mu_;  // Next runs on the prefetch thread
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> recent_times_;
  std::vector<std::unique_ptr<Loader>> loaders_;
  TileShape tile_;
  int64_t batch_ = 1, steps_ = 1;
};

// One jigsaw-train per checkpoint root: an exclusive flock on ROOT/.jigsaw-train.lock, held while the run
// lasts (a crashed run's lock goes with its process). Local roots only: object stores have no such lock.
class RootLock {
 public:
  RootLock() = default;
  RootLock(const RootLock&) = delete;
  RootLock& operator=(const RootLock&) = delete;
  ~RootLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Take(std::string root) {
    if (root.starts_with("file://")) root = root.substr(7);
    if (root.find("://") != std::string::npos) return OkStatus();
    std::error_code ec;
    std::filesystem::create_directories(root, ec);
    const std::string path = root + "/.jigsaw-train.lock";
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoToStatus(errno, "open " + path);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      ::close(fd_);
      fd_ = -1;
      if (e == EWOULDBLOCK)
        return FailedPreconditionError("another jigsaw-train is writing " + root + " (" + path +
                                       " is locked): one run per checkpoint root");
      return ErrnoToStatus(e, "lock " + path);
    }
    return OkStatus();
  }

 private:
  int fd_ = -1;
};

}  // namespace

void InstallStopHandlers() {
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
}

Result<TrainRunReport> RunTraining(const TrainRunOptions& o, TensorCommunicator* world, std::ostream& out) {
  const bool leader = world->rank() == 0;
  // ---- everything that can be refused, before any work ----
  ASSIGN_OR_RETURN(JigsawMesh jigsaw_mesh, ParseJigsawMesh(o.mesh));
  const int64_t s = jigsaw_mesh.s;
  std::ifstream cf(o.config);
  if (!cf) return NotFoundError("cannot open the model config " + o.config);
  std::stringstream text;
  text << cf.rdbuf();
  ASSIGN_OR_RETURN(nlohmann::json cj, ParseJson(text.str(), o.config));
  auto parsed = ParseTrainConfig(cj);
  if (!parsed.ok()) return parsed.status().Annotate(o.config);
  TrainConfig tc = *parsed;
  auto facts_or = ReadStoreFacts(o.data);
  if (!facts_or.ok()) return facts_or.status().Annotate(o.data);
  const StoreFacts& facts = *facts_or;
  ModelConfig& mc = tc.model;
  mc.channels = static_cast<int64_t>(facts.channels.size());
  mc.height = facts.height;
  mc.width = facts.width;
  mc.static_channels = static_cast<int64_t>(facts.static_channels.size());  // extra inputs, when the store has them
  auto grid_or = RunDomainGrid(mc, s, facts.tiles.lat, facts.tiles.lon, facts.tiles.ch);
  if (!grid_or.ok()) return grid_or.status().Annotate(o.data + " on --mesh " + o.mesh);
  const DomainGrid grid = *grid_or;  // the run's, not the model's: checkpoints keep tokens by patch position
  if (tc.token_mix_ratio > 0) mc.token_hidden = std::max<int64_t>(1, std::llround(tc.token_mix_ratio * mc.tokens()));
  RETURN_IF_ERROR(mc.Validate(s, grid).Annotate(o.config));
  std::vector<float> channel_w(mc.channels, 1.0f);
  for (const auto& [name, w] : tc.channel_weights) {
    auto it = std::find(facts.channels.begin(), facts.channels.end(), name);
    if (it == facts.channels.end())
      return InvalidArgumentError(o.config + ": channel_weights names \"" + name + "\", which the store does not hold");
    channel_w[it - facts.channels.begin()] = w;
  }
  const std::vector<float> lat_w = LatitudeWeights(facts.latitudes);
  if (o.steps < 1 || o.batch_size < 1 || o.rollout_steps < 1) {
    return InvalidArgumentError("--steps, --batch-size and --rollout-steps must be positive");
  }
  if (o.micro_batch < 0)
    return InvalidArgumentError("--micro-batch must be 0 (about 1024 token rows per product) or positive");
  if (o.stop_at < 0 || o.ckpt_every < 0 || o.val_every < 0 || o.val_batches < 0 || o.threads < 0 || o.prefetch < 1) {
    return InvalidArgumentError(
        "--stop-at, --ckpt-every, --val-every, --val-batches and --blas-threads must be 0 or "
        "positive, --prefetch positive");
  }
  if (o.resume && o.ckpt.empty()) return InvalidArgumentError("--resume needs --ckpt, the checkpoint root to continue");
  if (o.val_start.empty() != o.val_end.empty()) {
    return InvalidArgumentError("give both --val-start and --val-end (validation runs over that window), or neither");
  }
  for (const auto& [flag, a, b] :
       {std::tuple{"--train", o.train_start, o.train_end}, std::tuple{"--val", o.val_start, o.val_end}}) {
    int64_t t[2] = {0, 0};
    const std::string* text[2] = {&a, &b};
    for (int k = 0; k < 2; ++k) {
      if (text[k]->empty()) continue;
      auto parsed = ParseTimeBound(*text[k], k == 1);
      if (!parsed.ok()) return parsed.status().Annotate(std::string(flag) + (k ? "-end" : "-start"));
      t[k] = *parsed;
    }
    if (!a.empty() && !b.empty() && t[1] < t[0])
      return InvalidArgumentError(std::string(flag) + "-end " + b + " lies before " + flag + "-start " + a);
  }
  const bool validate = !o.val_start.empty();

  ASSIGN_OR_RETURN(auto backend, NewRankBackend(o.backend, o.threads, world));
  ASSIGN_OR_RETURN(MeshComms comms, SplitMeshOn(backend->device(), world, s));
  const MeshPosition pos = comms.pos;
  tc.optimizer.total_steps = o.steps;
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(mc, tc.optimizer, backend.get(), &comms, tc.seed, grid));
  WeatherMixer& model = trainer->model();
  RETURN_IF_ERROR(model.SetRecompute(o.recompute));
  model.matmul().set_overlap(o.overlap);
  trainer->set_micro_batch(o.micro_batch);
  RETURN_IF_ERROR(model.SetLossWeights(lat_w, channel_w));
  const TileShape tile = model.tile();
  RETURN_IF_ERROR(SetStaticInput(o.data, facts, &model));

  LoaderOptions lo;
  lo.dp_rank = pos.replica;
  lo.dp_size = pos.replicas;
  lo.batch_size = o.batch_size;
  lo.lead_steps = o.rollout_steps;
  lo.normalize = true;
  lo.seed = tc.seed;
  lo.start = o.train_start;
  lo.end = o.train_end;
  lo.prefetch = o.prefetch;
  const int64_t mesh_rank = pos.i * s + pos.j;
  auto train_data = TileBatches::Open(o.data, facts, s, mesh_rank, lo, tile);
  if (!train_data.ok()) return train_data.status().Annotate(o.data);

  // The validation batches, in order, from the start of the window: each validation opens them afresh. A
  // window that holds no batch is refused now, not after the last step.
  auto open_validation = [&]() -> Result<std::unique_ptr<TileBatches>> {
    LoaderOptions vo = lo;
    vo.shuffle = false;
    vo.start = o.val_start;
    vo.end = o.val_end;
    auto vd = TileBatches::Open(o.data, facts, s, mesh_rank, vo, tile);
    if (!vd.ok()) return vd.status().Annotate(o.data + " (validation window " + o.val_start + " to " + o.val_end + ")");
    return vd;
  };
  if (validate) RETURN_IF_ERROR(open_validation().status());

  // ---- the checkpoint root: whose it is and where this run starts, before any work ----
  std::unique_ptr<KvStore> ckpt;
  RootLock lock;
  std::string start_step;
  if (!o.ckpt.empty()) {
    ASSIGN_OR_RETURN(ckpt, OpenKvStore(o.ckpt));
    // One trainer per root: rank 0 holds its lock for the run (local roots).
    RETURN_IF_ERROR(AllOk(world, leader ? lock.Take(o.ckpt) : OkStatus()));
    // Rank 0 decides where the run starts and tells every rank: ranks that each read LATEST (or verified
    // steps) themselves could disagree, or one fail while the others go on into collectives.
    std::string decided;
    if (leader) {
      std::string note;
      auto starting = StartingStep(ckpt.get(), o.resume, &note);
      decided = (starting.ok() ? nlohmann::json{{"step", *starting}, {"note", note}}
                               : nlohmann::json{{"error", starting.status().message()},
                                                {"code", static_cast<int>(starting.status().code())}})
                    .dump();
    }
    RETURN_IF_ERROR(world->Broadcast(&decided));
    const nlohmann::json d = nlohmann::json::parse(decided);
    if (d.contains("error"))
      return Status(static_cast<StatusCode>(d["code"].get<int>()), d["error"].get<std::string>())
          .Annotate("--ckpt " + o.ckpt);
    start_step = d["step"].get<std::string>();
    if (leader && !d["note"].get<std::string>().empty())
      out << "jigsaw-train: " << d["note"].get<std::string>() << "\n";
  }
  TrainRunReport report;
  const nlohmann::json model_json = mc.ToJson();
  if (!start_step.empty()) {
    auto loaded = LoadModelCheckpoint(ckpt.get(), start_step, model, true);
    RETURN_IF_ERROR(AllOk(world, loaded.status()).Annotate(o.ckpt));
    RETURN_IF_ERROR(CheckDataContract(*loaded, facts).Annotate(o.data));
    trainer->set_step(loaded->step);
    LoaderState at = loaded->loader;
    // Another --batch-size or replica count: the same epoch and sample position, when it falls on a step of
    // the new size (a step reads batch_size samples per replica).
    const int64_t saved_batch = loaded->batch_size, saved_replicas = std::max<int64_t>(1, loaded->replicas);
    if (saved_batch > 0 && (saved_batch != o.batch_size || saved_replicas != pos.replicas)) {
      const int64_t sample = at.batch * saved_batch * saved_replicas, per_step = o.batch_size * pos.replicas;
      if (sample % per_step != 0) {
        return InvalidArgumentError("--batch-size " + std::to_string(o.batch_size) + " on " +
                                    std::to_string(pos.replicas) + " replicas: " + start_step +
                                    " stopped after sample " + std::to_string(sample) + " of its epoch (batches of " +
                                    std::to_string(saved_batch) + " on " + std::to_string(saved_replicas) +
                                    " replicas), where no step of " + std::to_string(per_step) +
                                    " samples starts; resume with a batch that divides it");
      }
      at.batch = sample / per_step;
      if (at.batch >= (*train_data)->batches_per_epoch()) at = {at.epoch + 1, 0};  // the epoch's end: the next
    }
    if (Status r = (*train_data)->Restore(at); !r.ok()) {
      return r.Annotate("resuming " + start_step + " (epoch " + std::to_string(at.epoch) + ", batch " +
                        std::to_string(at.batch) + " of " + std::to_string(o.batch_size) +
                        "): the training window of " + o.data + " holds " +
                        std::to_string((*train_data)->batches_per_epoch()) +
                        " batches per epoch; the checkpoint's run read a window or store with more");
    }
    if (leader) out << "jigsaw-train: resumed from " << start_step << " (step " << loaded->step << ")\n";
  } else if (o.resume && leader) {
    out << "jigsaw-train: --resume: no checkpoint in " << o.ckpt << " yet; starting from step 0\n";
  }
  report.first_step = trainer->step();

  std::ofstream log;
  if (leader && !o.log.empty()) {
    log.open(o.log, std::ios::app);
    if (!log) return IoError("cannot open the log " + o.log);
  }
  std::unique_ptr<TensorBoardWriter> board;
  if (leader && !o.tensorboard.empty()) {
    ASSIGN_OR_RETURN(board, OpenTensorBoard(o.tensorboard));
  }
  // Every record says what it is (`kind`: step, validation, checkpoint) and when (`time`, Unix seconds). The
  // same numbers go to TensorBoard as train/..., val/... and checkpoint/... scalars.
  auto emit = [&](nlohmann::json j, const std::string& kind) {
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (board) {
      const bool saved = kind == "checkpoint";
      const int64_t at = j.value(saved ? "checkpoint" : "step", int64_t{0});
      nlohmann::json numbers = j;
      numbers.erase("checkpoint");
      if (Status s = board->Record(kind == "step" ? "train" : kind == "validation" ? "val" : kind, at, numbers, now);
          !s.ok()) {
        out << "jigsaw-train: warning: " << s.message() << "; TensorBoard events stop here, training goes on\n";
        board.reset();
      }
    }
    if (!log.is_open()) return;
    j["kind"] = kind;
    j["time"] = now;
    log << j.dump() << "\n" << std::flush;
  };

  // ---- the training batches: made and put on the device one step ahead, on a thread of their own ----
  TileBatches* batches = train_data->get();
  std::unique_ptr<BatchPrefetch> prefetch = BatchPrefetch::Start(
      backend.get(), batches->x0_size(), batches->x1_size(),
      [batches](float* x0, float* x1) { return batches->Next(x0, x1); }, [batches] { return batches->state(); });

  // ---- checkpoints: replica 0's group saves, asynchronously ----
  AsyncCheckpointSaver saver;
  // A save's stall: the time Start takes plus what the next step waits for the copy before its update.
  struct PendingStall {
    int64_t step = -1;
    double start_s = 0;
  } pending;
  double copy_wait_s = 0;
  int64_t saved_step = -1;  // the last step a save was started for (every rank alike)
  auto save = [&](int64_t step) -> Status {
    if (!ckpt) return OkStatus();
    saved_step = step;
    if (pos.replica != 0) return OkStatus();
    const auto t0 = Clock::now();
    const LoaderState ls = prefetch->position();  // before the next batch the trainer takes
    const nlohmann::json run = {{"model", model_json},
                                {"config", tc.ToJson()},
                                {"step", step},
                                {"loader", {{"epoch", ls.epoch}, {"batch", ls.batch}}},
                                {"mesh", o.mesh},
                                {"data", o.data},
                                {"batch_size", o.batch_size},
                                {"replicas", pos.replicas},
                                {"domain_grid", grid.ToString()},
                                {"data_contract", DataContract(facts)}};
    // The blocks are copied during the next step's forward and backward (which only read them); the step
    // waits for the copy before its update. The previous save's verdict comes back here.
    RETURN_IF_ERROR(StartModelCheckpoint(&saver, ckpt.get(), step, model, run, comms.group.get(),
                                         /*copy_later=*/true));
    pending = {step, Since(t0)};
    return OkStatus();
  };

  // ---- validation ----
  auto run_validation = [&](int64_t step) -> Status {
    if (!validate) return OkStatus();
    auto vd = open_validation();
    RETURN_IF_ERROR(vd.status());
    const int64_t n = o.val_batches > 0 ? o.val_batches : (*vd)->batches_per_epoch();
    // Per channel, the latitude-weighted squared error (normalised units) of the model's rollout and of
    // persistence, each rank adding its own channels' pixels; the losses are these weighted as in training.
    const int64_t tn = tile.size(), K = o.rollout_steps;
    std::vector<double> sums(2 * mc.channels, 0.0);  // model, then persistence
    // The batch's samples go through the model together, as many at a time as training takes.
    const int64_t group = std::min(o.batch_size, model.SamplesAtOnce(o.micro_batch));
    std::vector<float> x0, x1, state(group * tn), tendency(group * tn);
    auto add_errors = [&](const float* a, const float* b, double* per_channel) {
      for (int64_t k = 0; k < tile.channels; ++k) {
        double sum = 0;
        for (int64_t y = 0; y < tile.height; ++y) {
          double row = 0;
          for (int64_t x = 0; x < tile.width; ++x) {
            const int64_t e = (k * tile.height + y) * tile.width + x;
            row += (double(a[e]) - b[e]) * (double(a[e]) - b[e]);
          }
          sum += row * lat_w[tile.row0 + y];
        }
        per_channel[tile.channel0 + k] += sum;
      }
    };
    for (int64_t b = 0; b < n; ++b) {
      RETURN_IF_ERROR((*vd)->Next(&x0, &x1));
      for (int64_t i0 = 0; i0 < o.batch_size; i0 += group) {
        const int64_t g = std::min(group, o.batch_size - i0);
        std::copy(x0.begin() + i0 * tn, x0.begin() + (i0 + g) * tn, state.begin());
        for (int64_t k = 0; k < K; ++k) {
          RETURN_IF_ERROR(model.Predict(state.data(), tendency.data(), g));
          for (int64_t e = 0; e < g * tn; ++e) state[e] += tendency[e];
          for (int64_t q = 0; q < g; ++q) {
            const int64_t i = i0 + q;
            add_errors(state.data() + q * tn, x1.data() + (i * K + k) * tn, sums.data());
            add_errors(x0.data() + i * tn, x1.data() + (i * K + k) * tn, sums.data() + mc.channels);
          }
        }
      }
    }
    // Each rank added its own channels over its own domain part: the sum over the group covers every
    // channel and pixel once; the sum over the replicas adds their samples.
    std::vector<float> total(sums.begin(), sums.end());
    RETURN_IF_ERROR(comms.group->AllReduceSum(total.data(), static_cast<int64_t>(total.size())));
    RETURN_IF_ERROR(comms.data->AllReduceSum(total.data(), static_cast<int64_t>(total.size())));
    const double per = double(mc.height) * mc.width * n * o.batch_size * pos.replicas * K;
    nlohmann::json by_channel = nlohmann::json::object(), persistence_by_channel = nlohmann::json::object();
    double loss = 0, persistence = 0;  // the training loss: sum_c w_c mse_c / C
    for (int64_t c = 0; c < mc.channels; ++c) {
      by_channel[facts.channels[c]] = total[c] / per;
      persistence_by_channel[facts.channels[c]] = total[mc.channels + c] / per;
      loss += channel_w[c] * (total[c] / per) / mc.channels;
      persistence += channel_w[c] * (total[mc.channels + c] / per) / mc.channels;
    }
    report.val_loss = loss;
    report.persistence_loss = persistence;
    emit({{"step", step},
          {"val_loss", loss},
          {"persistence_loss", persistence},
          {"val_batches", n},
          {"val_mse_by_channel", by_channel},
          {"persistence_mse_by_channel", persistence_by_channel}},
         "validation");
    if (leader) {
      if (o.progress) std::fprintf(stderr, "\n");
      out << "jigsaw-train: step " << step << ": validation loss " << loss << " (persistence " << persistence << ")\n";
    }
    return OkStatus();
  };

  // ---- what this run is, said once (rank 0), so that a log read later says what it was ----
  const int64_t val_every = o.val_every > 0 ? o.val_every : std::max<int64_t>(1, (o.steps + 9) / 10);
  {
    double params = 0;
    for (const auto& p : model.parameters()) params += static_cast<double>(p.local_size());
    const double all_params = params;
    float total = static_cast<float>(params);
    RETURN_IF_ERROR(world->AllReduceSum(&total, 1));  // every replica's copy counted: divided below
    int64_t val_samples = 0;
    if (validate) {
      ASSIGN_OR_RETURN(auto vd, open_validation());
      val_samples = vd->batches_per_epoch() * o.batch_size * pos.replicas;
    }
    if (leader) {
      const int64_t per_step = o.batch_size * pos.replicas, per_epoch = (*train_data)->batches_per_epoch() * per_step;
      out << "jigsaw-train " << Version() << ": " << world->size() << (world->size() == 1 ? " rank" : " ranks") << " = "
          << pos.replicas << (pos.replicas == 1 ? " replica" : " replicas") << " x mesh " << o.mesh << " (" << s * s
          << (s == 1 ? " rank" : " ranks") << " a model), backend " << o.backend << "\n";
      out << "  data " << o.data << ": " << HumanCount(per_epoch) << " samples an epoch in the training window";
      if (validate)
        out << ", " << HumanCount(val_samples) << " in the validation window (every " << val_every << " steps)";
      out << "\n  " << o.steps << " steps of " << per_step << (per_step == 1 ? " sample" : " samples") << " ("
          << Significant(double(o.steps * per_step) / std::max<int64_t>(1, per_epoch)) << " epochs), "
          << HumanCount(all_params) << " parameters on each rank, "
          << HumanCount(total / std::max<int64_t>(1, pos.replicas)) << " in the model\n";
      if (board) out << "  TensorBoard: " << board->path() << " (tensorboard --logdir " << o.tensorboard << ")\n";
      if (s == 1 && world->size() > 1) {
        out << "  note: no --mesh: each of the " << world->size()
            << " ranks trains a whole copy of the model on its own samples (data parallel); --mesh "
               "domain=s,tensor=s splits the model over s x s ranks\n";
      }
    }
  }

  // ---- the GEMM ceiling: this backend at this rank's own product shapes ----
  if (o.gemm_ceiling && report.first_step < o.steps) {
    report.gemm_ceiling_flop_per_s = MeasureGemmRate(backend.get(), RankGemmShapes(mc, s), 3).flop_per_s();
    if (leader) {
      out << "jigsaw-train: GEMM ceiling " << Significant(report.gemm_ceiling_flop_per_s / 1e9) << " GFLOP/s per rank ("
          << o.backend << " at this rank's product shapes)\n";
    }
  }
  const double ceiling = report.gemm_ceiling_flop_per_s;
  std::vector<double> rates;

  // ---- the loop ----
  const auto run_start = Clock::now();
  auto last_print = run_start;
  for (int64_t step = trainer->step(); step < o.steps; ++step) {
    float stop = stop_requested || (o.stop_at > 0 && step >= o.stop_at) ? 1.0f : 0.0f;
    RETURN_IF_ERROR(world->AllReduceSum(&stop, 1));  // every rank stops at the same step
    if (stop > 0) {
      report.stopped_by_signal = true;
      break;
    }
    const auto t0 = Clock::now();
    const LoaderState taking = prefetch->position();
    ASSIGN_OR_RETURN(BatchPrefetch::DeviceBatch batch, prefetch->Take());
    ASSIGN_OR_RETURN(StepResult r,
                     trainer->Step(TileBatch{o.batch_size, batch.x0, batch.x1, true, o.rollout_steps}, [&] {
                       const auto w0 = Clock::now();
                       saver.TilesCopied();
                       copy_wait_s = Since(w0);
                     }));
    const double seconds = Since(t0), wait = prefetch->TakeWaitSeconds();
    if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
      // Nothing after this is saved. A save in flight of the weights this step ran with (saved_step ==
      // r.step) is abandoned: the saver's destructor finishes its writes without committing them, so the
      // next save removes them. One of earlier weights is committed: LATEST is the last good step.
      if (ckpt && pos.replica == 0 && saved_step != r.step) RETURN_IF_ERROR(saver.Wait());
      const std::string times = batches->TimesOf(taking);
      return DataLossError("step " + std::to_string(r.step) + ": the loss is " + std::to_string(r.loss) +
                           " and the gradient norm " + std::to_string(r.grad_norm) + " on the samples of epoch " +
                           std::to_string(taking.epoch) + ", batch " + std::to_string(taking.batch) +
                           (times.empty() ? "" : " (times " + times + ")") +
                           ": stopped without saving these weights; check the data there (jigsaw-shard verify) "
                           "or lower the learning rate" +
                           (ckpt ? "; " + o.ckpt + "/LATEST keeps the last good step" : ""));
    }
    report.last_loss = r.loss;
    const double samples = double(o.batch_size * pos.replicas) / seconds;
    const double rate = r.gemm_flops / seconds;
    rates.push_back(rate);
    nlohmann::json record = {{"step", r.step},
                             {"lr", r.lr},
                             {"loss", r.loss},
                             {"grad_norm", r.grad_norm},
                             {"seconds", seconds},
                             {"loader_wait_s", wait},
                             {"samples_per_s", samples},
                             {"gflop_per_s_per_rank", rate / 1e9},
                             {"gemm_flops_per_rank", r.gemm_flops},
                             {"bytes_sent_per_rank", r.bytes_sent}};
    if (ceiling > 0) record["gemm_ceiling_share"] = rate / ceiling;
    emit(record, "step");
    if (pending.step >= 0) {
      const double stall = pending.start_s + copy_wait_s;
      emit({{"checkpoint", pending.step},
            {"stall_s", stall},
            {"start_s", pending.start_s},
            {"copy_wait_s", copy_wait_s},
            {"stall_share_of_step", stall / seconds}},
           "checkpoint");
      if (leader && o.progress) {
        std::fprintf(stderr, "\ncheckpoint %lld: training stalled %.1f ms (%.1f%% of a step)\n",
                     static_cast<long long>(pending.step), 1e3 * stall, 100.0 * stall / seconds);
      }
      pending.step = -1;
    }
    // Without a terminal (mpirun, a batch job): a line every print_every_s, and for the first and last step.
    if (leader && !o.progress &&
        (r.step == report.first_step || r.step + 1 == o.steps || Since(last_print) >= o.print_every_s)) {
      last_print = Clock::now();
      const double done = static_cast<double>(r.step + 1 - report.first_step), elapsed = Since(run_start);
      char line[256];
      std::snprintf(line, sizeof(line), "step %lld/%lld  loss %.5g  lr %.3g  %s samples/s  loader wait %.0f%%  ",
                    static_cast<long long>(r.step + 1), static_cast<long long>(o.steps), r.loss, r.lr,
                    HumanCount(samples).c_str(), 100.0 * wait / seconds);
      out << "jigsaw-train: " << line << "ETA " << HumanDuration(elapsed / done * double(o.steps - r.step - 1)) << "  ("
          << WallClock() << ")\n"
          << std::flush;
    }
    if (leader && o.progress) {
      char share[32] = "";
      if (ceiling > 0) std::snprintf(share, sizeof(share), " (%.0f%% of ceiling)", 100.0 * rate / ceiling);
      std::fprintf(stderr, "\rstep %lld/%lld  loss %.5f  %.1f samples/s  %.1f GFLOP/s/rank%s  loader wait %.0f%%   ",
                   static_cast<long long>(r.step + 1), static_cast<long long>(o.steps), r.loss, samples, rate / 1e9,
                   share, 100.0 * wait / seconds);
    }
    if (o.ckpt_every > 0 && (r.step + 1) % o.ckpt_every == 0 && r.step + 1 < o.steps) RETURN_IF_ERROR(save(r.step + 1));
    if (validate && (r.step + 1) % val_every == 0 && r.step + 1 < o.steps) RETURN_IF_ERROR(run_validation(r.step + 1));
  }
  if (leader && o.progress) std::fprintf(stderr, "\n");
  report.last_step = trainer->step();
  if (!rates.empty()) {
    std::nth_element(rates.begin(), rates.begin() + rates.size() / 2, rates.end());
    report.gemm_flop_per_s = rates[rates.size() / 2];
  }
  if (!report.stopped_by_signal) RETURN_IF_ERROR(run_validation(report.last_step));
  // A stop before any new step (a preemption right after a resume) has nothing new to save, nor a stop
  // right after a periodic save of the same step.
  if (report.last_step > report.first_step && report.last_step != saved_step) RETURN_IF_ERROR(save(report.last_step));
  if (ckpt && pos.replica == 0) RETURN_IF_ERROR(saver.Wait());
  RETURN_IF_ERROR(world->Barrier());
  if (leader) {
    out << "jigsaw-train: " << (report.stopped_by_signal ? "stopped at" : "finished") << " step " << report.last_step
        << ", loss " << report.last_loss << ", " << HumanDuration(Since(run_start));
    if (report.gemm_flop_per_s > 0) {
      out << ", " << Significant(report.gemm_flop_per_s / 1e9) << " GFLOP/s per rank in the model's products";
      if (ceiling > 0) {
        const double share = report.gemm_flop_per_s / ceiling;
        out << " (" << Significant(100 * share) << "% of the GEMM ceiling"
            << (share < 0.2 ? ": a small model's step is mostly outside its products, which is expected" : "") << ")";
      }
    }
    if (ckpt) out << "; checkpoint " << o.ckpt << "/" << StepDirectory(report.last_step);
    out << "\n";
  }
  return report;
}

}  // namespace jigsaw::train
