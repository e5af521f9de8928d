// The body of jigsaw-rollout: autoregressive forecasts of a checkpoint's WeatherMixer from initial states
// of a jigsaw-shard store, on any mesh (the checkpoint loads on it whatever mesh saved it), each rank
// keeping and writing only its tile, into a Zarr store that xarray opens as it is:
//   forecast [init_time, lead_time, channel, latitude, longitude], float32, physical units, chunk = tile,
//   lead_time 0 (the initial state) to the lead asked for, as a CF timedelta (hours).
// Written as the rollout goes and resumable: a rerun into the same store writes only the forecasts a
// killed run left unfinished. Collective: every rank of `world` calls it with the same options.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "parallel/communicator.h"

namespace jigsaw::train {

struct RolloutOptions {
  std::string ckpt;  // checkpoint root (its LATEST) or a step directory ROOT/step-00001000
  std::string data;  // the store holding the initial states (and the statistics)
  std::string mesh = "domain=1,tensor=1";
  std::string init;        // first initial time
  std::string init_end;    // last initial time (default: init)
  std::string init_every;  // e.g. 12h (default: the store's step)
  std::string lead;        // e.g. 10d or 240h: a multiple of the store's step
  std::string out;         // the forecast store (path or URL)
  int zarr_format = 3;
  std::string backend = "cpu";
  int threads = 0;
  bool progress = false;
  bool write = true;  // false: forecast and discard (measures the rollout without its writer)
  int64_t batch = 0;  // forecasts through the model at once (0: WeatherMixer::SamplesAtOnce's choice)
};

struct RolloutReport {
  int64_t inits = 0, inits_written = 0, inits_skipped = 0, leads = 0;  // leads: steps after the initial state
  double seconds = 0;
  double forecast_steps_per_s = 0;  // model applications per second (this job)
  double model_seconds = 0;         // of `seconds`, in the model's steps (no reading, loading or writing)
  double gb_written = 0;            // decoded bytes of forecast tiles written by this rank
  int64_t peak_rss_bytes = 0;       // this process
};

Result<RolloutReport> RunRollout(const RolloutOptions& options, TensorCommunicator* world, std::ostream& out);

}  // namespace jigsaw::train
