// jigsaw-rollout: forecasts from a jigsaw-train checkpoint on any mesh; one process per rank under mpirun
// (or one process alone on a 1x1 mesh). The body is train::RunRollout (jobs/rollout.h).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/common_flags.h"
#include "cli/mpi_world.h"
#include "jobs/rollout.h"

using namespace jigsaw;

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-rollout: autoregressive WeatherMixer forecasts from a jigsaw-train checkpoint, on any mesh (the "
      "checkpoint loads on it whatever mesh saved it), into a Zarr store that xarray opens: forecast[init_time, "
      "lead_time, channel, latitude, longitude] in physical units, lead 0 being the initial state. A rerun into "
      "the same store finishes only what a killed run left undone."};
  train::RolloutOptions o;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  bool json = false;
  std::string format = "zarr3";
  app.add_option("--ckpt", o.ckpt, "checkpoint root (its LATEST) or step directory ROOT/step-00001000")->required();
  app.add_option("--data", o.data, "jigsaw-shard store with the initial states and statistics")->required();
  app.add_option("--mesh", o.mesh, "domain=s,tensor=s (s^2 processes)")->capture_default_str();
  app.add_option("--init", o.init, "first initial time, e.g. 2020-02-01T00")->required();
  app.add_option("--init-end", o.init_end, "last initial time, inclusive (a bare date: the whole day; default: --init)");
  app.add_option("--init-every", o.init_every, "between initial times, e.g. 12h (default: the store's step)");
  app.add_option("--lead", o.lead, "forecast length, e.g. 10d or 240h: a multiple of the store's step")->required();
  app.add_option("--out", o.out, "the forecast store (path or URL)")->required();
  app.add_option("--format", format, "zarr3 or zarr2")->check(CLI::IsMember({"zarr3", "zarr2"}))->capture_default_str();
  app.add_option("--backend", o.backend, "cpu, cpu:bf16, cuda, cuda:tf32 or cuda:bf16")->capture_default_str();
  app.add_option("--blas-threads", o.threads, "BLAS threads per rank (0: the library's default)");
  // jigsaw-train's name for the same thing; --batch, its name before, still works.
  app.add_option("--micro-batch,--batch", o.batch,
                 "forecasts through the model at once, as jigsaw-train's --micro-batch (0: enough for about 1024 "
                 "token rows per product on a rank; their tokens are the rows of every product: larger GEMMs, more "
                 "memory)")
      ->capture_default_str()
      ->check(cli::AtLeast(0));
  bool no_write = false;
  app.add_flag("--no-write", no_write, "forecast without writing the tiles (measures the rollout without its writer)");
  app.add_flag("--json", json, "print the run's figures as one JSON object on stdout");
  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);
  o.zarr_format = format == "zarr2" ? 2 : 3;
  o.write = !no_write;
  cli::MpiWorld world;
  if (!world.status().ok()) return cli::Fail("jigsaw-rollout", world.status());
  o.progress = world->rank() == 0 && isatty(2);
  auto report = train::RunRollout(o, world.get(), json ? std::cerr : std::cout);
  if (!report.ok()) return world.Fail("jigsaw-rollout", report.status());
  if (json && world->rank() == 0) {
    std::cout << nlohmann::json{{"inits", report->inits},
                                {"written", report->inits_written},
                                {"skipped", report->inits_skipped},
                                {"leads", report->leads},
                                {"seconds", report->seconds},
                                {"forecast_steps_per_s", report->forecast_steps_per_s},
                                {"model_seconds", report->model_seconds},
                                {"gb_written_rank0", report->gb_written},
                                {"peak_rss_bytes_rank0", report->peak_rss_bytes}}
                     .dump()
              << "\n";
  }
  return 0;
}
