// jigsaw-shard: reanalysis data -> tile-aligned Zarr stores with normalisation statistics.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "cli/common_flags.h"
#include "cli/mpi_world.h"
#include "cli/progress.h"
#include "base/human.h"
#include "pipeline/shard/climatology.h"
#include "pipeline/shard/describe.h"
#include "pipeline/shard/plan.h"
#include "pipeline/shard/shard_parts.h"
#include "pipeline/shard/shard_store.h"
#include "pipeline/shard/synthetic.h"

namespace {

using namespace jigsaw;

int Fail(const Status& s) { return cli::Fail("jigsaw-shard", s); }

std::vector<std::string> SplitList(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      size_t c = item.find(',', start);
      if (c == std::string::npos) c = item.size();
      if (c > start) out.push_back(item.substr(start, c - start));
      start = c + 1;
    }
  }
  return out;
}

struct PlanFlags {
  std::vector<std::string> sources, vars, levels, statics;
  std::string format = "zarr3";
  std::optional<int64_t> member;
  std::string members;
  ShardOptions options;

  void Add(CLI::App* cmd) {
    cmd->add_option("--source", sources,
                    "Zarr store (path or URL), NetCDF or GRIB file / glob (*.nc, *.grib, *.grb2, ...); repeat to "
                    "combine")
        ->required();
    cmd->add_option("--member", member,
                    "ensemble sources: the member to read (its value along number / realization / member)");
    cmd->add_option("--members", members,
                    "ensemble sources: \"all\" (or a list, e.g. 0,3,7): each member a sample of its own at every "
                    "time; data becomes [time, member, channel, lat, lon]")
        ->excludes("--member");
    cmd->add_option("--vars", vars, "variables in channel order, comma-separated (WB2 long names or CDS short names)")
        ->required();
    cmd->add_option("--levels", levels,
                    "pressure levels in hPa, comma-separated, in channel order (default: all, 1000 first)");
    cmd->add_option("--start", options.start, "first time, e.g. 2020-01-01T00 (default: the sources' first)");
    cmd->add_option("--end", options.end,
                    "last time, inclusive; a bare date, month or year means all of it (2019-12-31: up to 18 UTC of a "
                    "6-hourly store) (default: the sources' last)");
    cmd->add_option("--step", options.step,
                    "time step: 6h, 1h, 30m, 1d (default: the sources' own, their smallest gap between times)");
    cmd->add_option("--tiles", options.tiles, "tile grid LATxLONxCH, e.g. 1x2x2")->required();
    cmd->add_option("--format", format, "zarr3 (default) or zarr2")->check(CLI::IsMember({"zarr2", "zarr3"}));
    cmd->add_option("--dtype", options.dtype, "float32 (default), bfloat16 or float16")
        ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
    cmd->add_option("--codec", options.codec, "blosc-lz4 (default), blosc-zstd, zstd, none, ...");
    cmd->add_option("--time-per-shard", options.time_per_shard, "v3: K time steps of a tile in one shard object");
    cmd->add_option("--stats-start", options.stats_start, "first time of the statistics window");
    cmd->add_option("--stats-end", options.stats_end,
                    "last time of the statistics window (inclusive; a bare date: the whole day)");
    cmd->add_option("--lat-crop", options.lat_crop, "drop N southernmost latitude rows (e.g. 1: 721 -> 720)");
    cmd->add_flag("--allow-missing", options.allow_missing,
                  "write NaN for times no source holds (recorded) and keep values a source masks (GRIB bitmaps, fill "
                  "values) as NaN; without it a value that is not finite is refused, naming channel and time");
    cmd->add_option("--static", statics,
                    "time-independent fields for the `static` array, comma-separated, e.g. "
                    "land_sea_mask,geopotential_at_surface,soil_type (lsm, z, slt in CDS/GRIB files)");
  }

  Result<std::pair<ShardPlan, std::vector<std::unique_ptr<Source>>>> Make() {
    options.vars = SplitList(vars);
    for (size_t i = 0; i < options.vars.size(); ++i)
      for (size_t k = 0; k < i; ++k)
        if (options.vars[i] == options.vars[k])
          return InvalidArgumentError("--vars names " + options.vars[i] + " twice");
    options.zarr_format = format == "zarr2" ? 2 : 3;
    options.static_vars = SplitList(statics);
    for (const auto& l : SplitList(levels)) {
      // The whole text is the number: "500abc" is not 500.
      char* end = nullptr;
      const double v = std::strtod(l.c_str(), &end);
      if (l.empty() || *end != '\0' || !std::isfinite(v))
        return InvalidArgumentError("level \"" + l + "\" is not a number");
      for (double seen : options.levels)
        if (seen == v) return InvalidArgumentError("--levels names " + l + " twice");
      options.levels.push_back(v);
    }
    auto open_all = [&](const SourceOptions& so) -> Result<std::vector<std::unique_ptr<Source>>> {
      std::vector<std::unique_ptr<Source>> opened;
      for (const auto& spec : sources) {
        ASSIGN_OR_RETURN(auto group, OpenSources(spec, so));
        for (auto& g : group) opened.push_back(std::move(g));
      }
      return opened;
    };
    if (members.empty()) {
      ASSIGN_OR_RETURN(auto opened, open_all(SourceOptions{member}));
      if (member) {
        bool ensemble = false;
        for (const auto& src : opened) ensemble |= !src->members().empty();
        if (!ensemble)
          return InvalidArgumentError("--member " + std::to_string(*member) +
                                      ": no source has a member dimension (number, realization or member)");
        options.member = member;
      }
      ASSIGN_OR_RETURN(ShardPlan plan, MakeShardPlan(options, opened));
      return std::make_pair(std::move(plan), std::move(opened));
    }
    // --members: the members of the first ensemble source, each read through sources of its own; the plan is
    // the same for every member (same times and variables) or refused.
    ASSIGN_OR_RETURN(auto probe, open_all(SourceOptions{.member = std::nullopt, .first_member = true}));
    std::vector<int64_t> have;
    for (const auto& src : probe)
      if (have.empty()) have = src->members();
    if (have.empty()) return InvalidArgumentError("--members " + members + ": no source has a member dimension");
    if (members == "all") {
      options.members = have;
    } else {
      for (const auto& text : SplitList({members})) {
        char* end = nullptr;
        const long long v = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') return InvalidArgumentError("--members: \"" + text + "\" is not a member");
        if (std::find(have.begin(), have.end(), v) == have.end())
          return InvalidArgumentError("--members: the sources have no member " + text);
        if (std::find(options.members.begin(), options.members.end(), v) != options.members.end())
          return InvalidArgumentError("--members names " + text + " twice");
        options.members.push_back(v);
      }
    }
    std::vector<std::unique_ptr<Source>> all;  // member m's sources at [m * n, (m + 1) * n)
    std::optional<ShardPlan> plan;
    for (int64_t m : options.members) {
      ASSIGN_OR_RETURN(auto opened, open_all(SourceOptions{m}));
      ASSIGN_OR_RETURN(ShardPlan p, MakeShardPlan(options, opened));
      if (plan && p.ToJson() != plan->ToJson()) {
        return InvalidArgumentError("member " + std::to_string(m) + " differs from member " +
                                    std::to_string(options.members.front()) +
                                    " in its times, variables or grid; shard members that agree");
      }
      if (!plan) plan = std::move(p);
      for (auto& o : opened) all.push_back(std::move(o));
    }
    return std::make_pair(std::move(*plan), std::move(all));
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-shard: turn reanalysis data (WeatherBench2/ARCO Zarr stores, Copernicus NetCDF and GRIB files) into\n"
      "a Zarr "
      "store whose chunks are exactly the Jigsaw tiles, with per-channel normalisation statistics."};
  app.require_subcommand(1);
  app.fallthrough();
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  bool as_json = false;

  std::vector<std::string> describe_sources;
  auto* describe = app.add_subcommand(
      "describe",
      "list what sources hold before sharding them: variables (WeatherBench2 and short names, levels, units), "
      "times (first, last, step, gaps), grid, members and static fields");
  describe
      ->add_option("SOURCE", describe_sources,
                   "Zarr store (path or URL), NetCDF or GRIB file or glob (its files described together); several "
                   "are described one after another")
      ->required();
  describe->add_flag("--json", as_json, "machine-readable output: {\"sources\": [one object per SOURCE]}");

  PlanFlags plan_flags, run_flags;
  auto* plan =
      app.add_subcommand("plan", "print the channels, tiles, bytes and objects a run would write; writes nothing");
  plan_flags.Add(plan);
  plan->add_flag("--json", as_json, "machine-readable output");

  std::string out_url, part_text;
  auto* run = app.add_subcommand(
      "run",
      "write the store (resumes a store of the same plan; refuses another plan). Under mpirun the ranks split the "
      "times among them and rank 0 finishes the store");
  run_flags.Add(run);
  run->add_option("--out", out_url, "output store path or URL")->required();
  run->add_option("--part", part_text,
                  "I/N: write part I of N (1 <= I <= N) of the times, for job arrays without MPI; every part runs the "
                  "same flags, and the last to end finishes the store (or `jigsaw-shard finish`)");
  bool no_finish = false;
  run->add_flag("--no-finish", no_finish,
                "with --part: leave the finish to `jigsaw-shard finish` (a job that depends on the array's parts), "
                "even when this part ends last");



  std::string url;
  auto* finish = app.add_subcommand(
      "finish", "merge the parts of a store written with --part (statistics, checksum record, completion mark); "
                "refuses while parts are missing, naming them and their times");
  finish->add_option("URL", url, "store written by jigsaw-shard run --part")->required();
  auto* verify = app.add_subcommand("verify", "check completeness, checksums and metadata against the plan");
  verify->add_option("URL", url, "store written by jigsaw-shard run")->required();
  verify->add_flag("--json", as_json, "machine-readable output");

  auto* info = app.add_subcommand("info", "describe a store written by jigsaw-shard: plan, layout, statistics");
  info->add_option("URL", url, "store")->required();
  info->add_flag("--json", as_json, "machine-readable output");

  SyntheticSpec synth_spec;
  std::string grid = "33x64", synth_format = "zarr2";
  auto* synth = app.add_subcommand("synth", "write a small synthetic ERA5-like source in the WeatherBench2 layout");
  synth->add_option("OUT", url, "output store (must not exist)")->required();
  synth->add_option("--grid", grid, "NLATxNLON (default 33x64)");
  synth->add_option("--times", synth_spec.ntime, "number of time steps (default 8)");
  synth->add_option("--start", synth_spec.start, "first time (default 2020-01-01T00)");
  synth->add_flag("--lat-ascending", synth_spec.lat_ascending, "latitude south -> north");
  synth->add_flag("--lon-signed", synth_spec.lon_signed, "longitude in [-180, 180)");
  synth->add_flag("--levels-descending", synth_spec.levels_descending, "1000 hPa first");
  synth->add_option("--format", synth_format, "zarr2 (default, as xarray) or zarr3")
      ->check(CLI::IsMember({"zarr2", "zarr3"}));

  ClimatologyOptions clim_options;
  std::string clim_out, clim_format = "zarr3";
  auto* clim =
      app.add_subcommand("climatology",
                         "mean by day of year and hour of day over a span of a store, as WeatherBench2's "
                         "compute_hourly_stat makes it (years stacked by day of year, a year's missing days from its "
                         "31 December, a triangular 61-day window), for jigsaw-score's anomaly correlations");
  clim->add_option("URL", url, "store written by jigsaw-shard run")->required();
  clim->add_option("--start", clim_options.start,
                   "first sample averaged; a bare year or month starts at its first day (default: the store's first)");
  clim->add_option("--end", clim_options.end,
                   "last sample averaged, inclusive; a bare date, month or year means all of it, as WeatherBench2's "
                   "slice('1990', '2019') (default: the store's last)");
  clim->add_option("--window", clim_options.window_days, "days in the centred window (odd)")->capture_default_str();
  clim->add_flag("--uniform-window", clim_options.uniform_window,
                 "weigh every day of the window alike (WeatherBench2, the default, weighs day k of the window "
                 "1 - |k|/half: a triangle)");
  clim->add_option("--out", clim_out, "output store path or URL")->required();
  clim->add_option("--format", clim_format, "zarr3 or zarr2")
      ->check(CLI::IsMember({"zarr2", "zarr3"}))
      ->capture_default_str();

  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);
  if (clim->parsed()) {
    clim_options.zarr_format = clim_format == "zarr2" ? 2 : 3;
    auto r = WriteClimatology(url, clim_out, clim_options, std::cout);
    return r.ok() ? 0 : Fail(r.status());
  }

  if (describe->parsed()) {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& spec : describe_sources) {
      auto d = DescribeSource(spec);
      if (!d.ok()) return Fail(d.status().Annotate(spec));
      if (!as_json) PrintSourceDescription(*d, std::cout);
      all.push_back(std::move(*d));
    }
    if (as_json) std::cout << nlohmann::json{{"sources", all}}.dump(2) << "\n";
    return 0;
  }
  if (plan->parsed()) {
    auto made = plan_flags.Make();
    if (!made.ok()) return Fail(made.status());
    PrintPlan(made->first, as_json, std::cout);
    return 0;
  }
  if (run->parsed()) {
    cli::MpiWorld world;
    if (!world.status().ok()) return Fail(world.status());
    ShardPart part;
    if (!part_text.empty()) {
      auto parsed = ParseShardPart(part_text);
      if (!parsed.ok()) return Fail(parsed.status());
      if (world->size() > 1)
        return Fail(InvalidArgumentError("--part and mpirun: under mpirun each rank runs one part by itself"));
      part = *parsed;
    } else if (world->size() > 1) {
      part = ShardPart{world->rank(), world->size()};
    }
    auto made = run_flags.Make();
    if (!made.ok()) return world.Fail("jigsaw-shard", made.status());
    auto out = OpenKvStore(out_url);
    if (!out.ok()) return world.Fail("jigsaw-shard", out.status());
    cli::ProgressBar bar(part.whole() ? "shard" : "shard part " + part.ToString(), true);
    // Under mpirun rank 0 finishes once every rank's part is written (a barrier); job-array parts finish
    // whoever ends last.
    auto report = RunShard(
        made->first, made->second, out->get(), [&](int64_t d, int64_t t) { bar.Update(d, t); }, std::cerr, part,
        world->size() == 1 && !no_finish);
    bar.Finish();
    if (!report.ok()) return world.Fail("jigsaw-shard", report.status());
    if (world->size() > 1) {
      if (Status s = world->Barrier(); !s.ok()) return world.Fail("jigsaw-shard", s);
      if (world->rank() == 0) {
        if (Status s = FinishShardParts(out->get(), std::cerr); !s.ok()) return Fail(s);
      }
    }
    std::cout << (*out)->url() << (part.whole() ? "" : " part " + part.ToString()) << ": " << report->times_written
              << " time steps written, " << report->times_skipped
              << " already present; " << HumanBytes(report->bytes_written) << " in " << HumanDuration(report->seconds);
    if (report->seconds > 0 && report->bytes_written > 0)
      std::cout << " = " << HumanBytes(report->bytes_written / report->seconds) << "/s";
    std::cout << " (reading sources " << HumanDuration(report->read_seconds) << ", encoding and writing "
              << HumanDuration(report->write_seconds) << ", statistics " << HumanDuration(report->stats_seconds)
              << ")\n";
    return 0;
  }
  auto store = OpenKvStore(url);
  if (!store.ok()) return Fail(store.status());
  if (finish->parsed()) {
    Status s = FinishShardParts(store->get(), std::cout);
    return s.ok() ? 0 : Fail(s);
  }
  if (verify->parsed()) {
    auto problems = VerifyShardStore(store->get());
    if (!problems.ok()) return Fail(problems.status());
    if (as_json) {
      std::cout << nlohmann::json{{"url", (*store)->url()}, {"ok", problems->empty()}, {"problems", *problems}}.dump(2)
                << "\n";
    } else {
      for (const auto& p : *problems) std::cout << "problem: " << p << "\n";
      std::cout << (*store)->url() << ": "
                << (problems->empty() ? "ok" : std::to_string(problems->size()) + " problems") << "\n";
    }
    return problems->empty() ? 0 : 1;
  }
  if (info->parsed()) {
    Status s = PrintShardStoreInfo(store->get(), as_json, std::cout);
    return s.ok() ? 0 : Fail(s);
  }
  if (synth->parsed()) {
    auto x = grid.find('x');
    try {
      synth_spec.nlat = std::stoll(grid.substr(0, x));
      synth_spec.nlon = std::stoll(grid.substr(x + 1));
    } catch (...) {
      return Fail(InvalidArgumentError("--grid must be NLATxNLON, e.g. 33x64"));
    }
    synth_spec.zarr_format = synth_format == "zarr3" ? 3 : 2;
    auto keys = (*store)->List("");
    if (keys.ok() && !keys->empty()) return Fail(FailedPreconditionError(url + " is not empty"));
    Status s = WriteSyntheticEra5(store->get(), synth_spec);
    if (!s.ok()) return Fail(s);
    std::cout << "wrote " << (*store)->url() << ": " << synth_spec.ntime << " times, " << synth_spec.nlat << "x"
              << synth_spec.nlon << ", 5 pressure variables x 13 levels + 4 surface variables + 3 static fields\n";
    return 0;
  }
  return 0;
}
