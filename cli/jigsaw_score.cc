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
      "jigsaw-score: latitude-weighted RMSE and bias per channel and lead time of a jigsaw-rollout forecast against "
      "a jigsaw-shard store, as WeatherBench2 defines them, beside persistence; with --climatology also the anomaly "
      "correlation (ACC) and the climatology's RMSE. Valid times the truth lacks are skipped and counted."};
  train::ScoreOptions o;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  std::string json_path, csv_path, plot_path;
  app.add_option("FORECAST", o.forecast, "the forecast store (jigsaw-rollout)")->required();
  app.add_option("--truth", o.truth, "the jigsaw-shard store to score against")->required();
  app.add_option("--climatology", o.climatology, "a jigsaw-shard climatology: adds ACC and the climatology baseline");
  app.add_option("--channels", o.channels, "channel names or z500,t850,t2m,u10,msl,q700 (default: all)")
      ->delimiter(',');
  app.add_option("--json", json_path, "write every score as JSON ('-': stdout)");
  app.add_option("--csv", csv_path, "write every score as CSV ('-': stdout)");
  app.add_option("--plot", plot_path,
                 "draw RMSE and ACC against lead time, one panel per headline channel, into this image (.png, .svg, "
                 ".pdf; needs python3-matplotlib)");
  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);
  auto scores = train::ScoreForecast(o);
  if (!scores.ok()) return cli::Fail("jigsaw-score", scores.status());
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
  if (json_path != "-" && csv_path != "-") scores->PrintTable(std::cout);
  if (!json_path.empty()) {
    Status st = write(json_path, scores->ToJson().dump(1) + "\n");
    if (!st.ok()) return cli::Fail("jigsaw-score", st);
  }
  if (!csv_path.empty()) {
    Status st = write(csv_path, scores->ToCsv());
    if (!st.ok()) return cli::Fail("jigsaw-score", st);
  }
  if (!plot_path.empty()) {
    Status st = Plot(scores->ToJson(), plot_path);
    if (!st.ok()) return cli::Fail("jigsaw-score", st);
  }
  return 0;
}
