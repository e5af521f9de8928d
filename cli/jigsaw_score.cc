// jigsaw-score: a jigsaw-rollout forecast against a jigsaw-shard store, scored as WeatherBench2 does.
// The body is train::ScoreForecast (jobs/score.h).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/common_flags.h"
#include "jobs/score.h"

using namespace jigsaw;

extern char** environ;

namespace {

// Draws `scores` into `image` with jigsaw-plot-scores (Python, matplotlib), which sits beside this binary.
Status Plot(const nlohmann::json& scores, const std::string& image) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string script = (self.parent_path() / "jigsaw-plot-scores").string();
  if (ec || !std::filesystem::exists(script))
    return NotFoundError("--plot: no jigsaw-plot-scores beside " + self.string());
  char tmp[] = "/tmp/jigsaw-score-XXXXXX";
  const int fd = mkstemp(tmp);
  if (fd < 0) return ErrnoToStatus(errno, "--plot: a temporary file");
  const std::string text = scores.dump();
  const bool wrote = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  Status st = wrote ? OkStatus() : IoError(std::string("--plot: cannot write ") + tmp);
  if (st.ok()) {
    std::vector<char*> argv = {const_cast<char*>(script.c_str()), tmp, const_cast<char*>(image.c_str()), nullptr};
    pid_t pid;
    int status = 0;
    if (posix_spawn(&pid, script.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      st = ErrnoToStatus(errno, "--plot: cannot run " + script);
    } else if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      st = IoError("--plot: jigsaw-plot-scores could not draw " + image + " (its message is above)");
    }
  }
  std::remove(tmp);
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-score: latitude-weighted RMSE and bias per region, channel and lead time of jigsaw-rollout forecasts "
      "against a jigsaw-shard store, as WeatherBench2 defines them, beside persistence; with --climatology also the "
      "anomaly correlation (ACC) and the climatology's RMSE. Several forecasts (two models, or two checkpoints of one) "
      "are scored side by side. A forecast is read strictly: complete, every chunk there and matching its checksum "
      "record, on the truth's grid. Valid times the truth lacks are skipped and counted."};
  std::vector<std::string> forecasts, labels, region_names, custom_regions;
  train::ScoreOptions o;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  bool json = false;
  std::string json_path, csv_path, plot_path;
  app.add_option("FORECAST", forecasts, "forecast stores (jigsaw-rollout), scored side by side")->required();
  app.add_option("--truth", o.truth, "the jigsaw-shard store to score against")->required();
  app.add_option("--label", labels, "a name per forecast for the table, JSON, CSV and plot (default: its file name)");
  app.add_option("--climatology", o.climatology, "a jigsaw-shard climatology: adds ACC and the climatology baseline");
  app.add_option("--channels", o.channels,
                 "channel names or short names: <name><level> (z500, t850, q700, u250, ...), t2m, u10, v10, msl "
                 "(default: all)")
      ->delimiter(',');
  app.add_option("--regions", region_names,
                 "WeatherBench2's regions to score: global, tropics, extra-tropics, northern-hemisphere, "
                 "southern-hemisphere (default: all; global always)")
      ->delimiter(',');
  app.add_option("--region", custom_regions, "a box of your own, NAME=LAT0:LAT1[,LON0:LON1] (repeatable)");
  app.add_flag("--json", json, "print every score as JSON on stdout (instead of the table)");
  app.add_option("--json-out", json_path, "write every score as JSON to this file");
  app.add_option("--csv", csv_path, "write every score as CSV to this file ('-': stdout, instead of the table)");
  app.add_option("--plot", plot_path,
                 "draw RMSE and ACC against lead time, a column per channel and two rows per region, into this image "
                 "(.png, .svg, .pdf; needs python3-matplotlib)");
  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);
  if (!labels.empty() && labels.size() != forecasts.size()) {
    return cli::Fail("jigsaw-score", InvalidArgumentError(std::to_string(labels.size()) + " --label for " +
                                                          std::to_string(forecasts.size()) + " forecasts: one each"));
  }
  if (json && csv_path == "-")
    return cli::Fail("jigsaw-score", InvalidArgumentError("--json and --csv - both print on stdout: choose one"));
  // WeatherBench2's regions (those named, or all), then the boxes given.
  if (region_names.empty()) o.regions = train::PredefinedRegions();
  for (const std::string& name : region_names) {
    if (name.find('=') != std::string::npos)
      return cli::Fail("jigsaw-score", InvalidArgumentError("--regions takes names; a box goes to --region"));
    auto r = train::ParseRegion(name);
    if (!r.ok()) return cli::Fail("jigsaw-score", r.status());
    o.regions.push_back(*r);
  }
  for (const std::string& box : custom_regions) {
    if (box.find('=') == std::string::npos) {
      return cli::Fail("jigsaw-score", InvalidArgumentError("--region takes NAME=LAT0:LAT1[,LON0:LON1], not " + box));
    }
    auto r = train::ParseRegion(box);
    if (!r.ok()) return cli::Fail("jigsaw-score", r.status());
    o.regions.push_back(*r);
  }
  std::vector<train::Scores> all;
  for (size_t k = 0; k < forecasts.size(); ++k) {
    o.forecast = forecasts[k];
    o.label = labels.empty() ? "" : labels[k];
    auto scores = train::ScoreForecast(o);
    if (!scores.ok()) return cli::Fail("jigsaw-score", scores.status());
    // Side by side: the same channels and leads as the first forecast.
    if (!all.empty()) {
      const auto& a = all.front().channels();
      const auto& b = scores->channels();
      bool same = a.size() == b.size();
      for (size_t c = 0; same && c < a.size(); ++c)
        same = a[c].channel == b[c].channel && a[c].lead_hours == b[c].lead_hours;
      if (!same) {
        return cli::Fail("jigsaw-score",
                         InvalidArgumentError(forecasts[k] + " has other channels or leads than " + forecasts[0] +
                                              ": score them apart, or pick common "
                                              "--channels"));
      }
    }
    for (const auto& s : all)
      if (s.label == scores->label)
        return cli::Fail("jigsaw-score",
                         InvalidArgumentError("two forecasts are labelled " + s.label + ": give --label"));
    all.push_back(std::move(*scores));
  }
  const nlohmann::json j = train::ScoresToJson(all);
  auto write = [&](const std::string& path, const std::string& text) -> Status {
    if (path == "-") {
      std::cout << text;
      return OkStatus();
    }
    std::ofstream f(path);
    f << text;
    f.close();
    return f ? OkStatus() : IoError("cannot write " + path);
  };
  if (json) {
    std::cout << j.dump() << "\n";
  } else if (csv_path != "-") {
    train::PrintScores(all, std::cout);
  }
  if (!json_path.empty()) {
    Status st = write(json_path, j.dump(1) + "\n");
    if (!st.ok()) return cli::Fail("jigsaw-score", st);
  }
  if (!csv_path.empty()) {
    Status st = write(csv_path, train::ScoresToCsv(all));
    if (!st.ok()) return cli::Fail("jigsaw-score", st);
  }
  if (!plot_path.empty()) {
    Status st = Plot(j, plot_path);
    if (!st.ok()) return cli::Fail("jigsaw-score", st);
  }
  return 0;
}
