// jigsaw-score: a jigsaw-rollout forecast against a jigsaw-shard store, scored as WeatherBench2 does.
// The body is train::ScoreForecast (jobs/score.h).
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "cli/common_flags.h"
#include "jobs/score.h"

using namespace jigsaw;

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-score: latitude-weighted RMSE and bias per channel and lead time of a jigsaw-rollout forecast against "
      "a jigsaw-shard store, as WeatherBench2 defines them, beside persistence; with --climatology also the anomaly "
      "correlation (ACC) and the climatology's RMSE. Valid times the truth lacks are skipped and counted."};
  train::ScoreOptions o;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  std::string json_path, csv_path;
  app.add_option("FORECAST", o.forecast, "the forecast store (jigsaw-rollout)")->required();
  app.add_option("--truth", o.truth, "the jigsaw-shard store to score against")->required();
  app.add_option("--climatology", o.climatology, "a jigsaw-shard climatology: adds ACC and the climatology baseline");
  app.add_option("--channels", o.channels, "channel names or z500,t850,t2m,u10,msl,q700 (default: all)")->delimiter(',');
  app.add_option("--json", json_path, "write every score as JSON ('-': stdout)");
  app.add_option("--csv", csv_path, "write every score as CSV ('-': stdout)");
  CLI11_PARSE(app, argc, argv);
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
  return 0;
}
