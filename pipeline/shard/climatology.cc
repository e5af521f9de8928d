#include "pipeline/shard/climatology.h"


#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "pipeline/grid/tile_grid.h"
#include "pipeline/shard/shard_store.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"
#include "storage/kvstore/checksum_record.h"
#include "storage/zarr/group.h"

namespace jigsaw {
namespace {

constexpr int64_t kDays = 366;

template <typename T>
Result<std::vector<T>> ReadCoordinate(KvStore* store, const std::string& name) {
  ASSIGN_OR_RETURN(auto a, Array::Open(store, name));
  return ReadWhole1D<T>(*a);
}

}  // namespace

Result<ClimatologyReport> WriteClimatology(const std::string& store_url, const std::string& out_url,
                                           const ClimatologyOptions& o, std::ostream& log) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.window_days < 1 || o.window_days % 2 == 0 || o.window_days > 365)
    return InvalidArgumentError("--window " + std::to_string(o.window_days) +
                                ": an odd number of days up to 365 (a wider window would count days twice)");
  if (o.window_days < 3 && !o.uniform_window)
    return InvalidArgumentError("--window " + std::to_string(o.window_days) +
                                ": a triangular window needs at least 3 days (its end days weigh nothing)");
  ASSIGN_OR_RETURN(auto src, OpenKvStore(store_url));
  ASSIGN_OR_RETURN(ShardStoreInfo info, ReadShardStoreInfo(src.get()));
  if (!info.complete) return FailedPreconditionError(store_url + " is not complete");
  if (!info.members.empty()) {
    return UnimplementedError(store_url + " holds " + std::to_string(info.members.size()) +
                              " ensemble members: climatologies are made of single-member stores (jigsaw-shard "
                              "--member N)");
  }
  TileGrid tiles;
  std::vector<std::string> channels;
  int64_t step = 0;
  try {
    const auto& plan = info.attributes.at("plan");
    ASSIGN_OR_RETURN(tiles, TileGrid::Parse(plan.at("tiles").get<std::string>()));
    channels = plan.at("channels").get<std::vector<std::string>>();
    step = plan.at("step_seconds").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(store_url + ": malformed plan attributes: " + e.what());
  }
  if (step <= 0 || 86400 % step != 0) {
    return UnimplementedError(store_url +
                              ": a climatology by hour of day needs a step that divides a day (this store's: " +
                              std::to_string(step) + " s)");
  }
  ASSIGN_OR_RETURN(auto data, Array::Open(src.get(), "data"));
  data->RequireEveryChunk(true);
  if (data->metadata().dtype.name != "float32") return UnimplementedError("climatologies are made of float32 stores");
  ASSIGN_OR_RETURN(auto times, ReadCoordinate<int64_t>(src.get(), "time"));
  ASSIGN_OR_RETURN(auto lat, ReadCoordinate<double>(src.get(), "latitude"));
  ASSIGN_OR_RETURN(auto lon, ReadCoordinate<double>(src.get(), "longitude"));
  std::set<std::string> missing;
  for (const auto& t : info.attributes["plan"].value("missing_times", nlohmann::json::array()))
    missing.insert(t.get<std::string>());
  int64_t first = std::numeric_limits<int64_t>::min(), last = std::numeric_limits<int64_t>::max();
  if (!o.start.empty()) {
    ASSIGN_OR_RETURN(first, ParseTimeBound(o.start, false));
  }
  if (!o.end.empty()) {
    ASSIGN_OR_RETURN(last, ParseTimeBound(o.end, true));
  }
  std::vector<int64_t> used;  // indices into times
  for (size_t i = 0; i < times.size(); ++i)
    if (times[i] >= first && times[i] <= last && !missing.count(FormatIsoTime(times[i])))
      used.push_back(static_cast<int64_t>(i));
  if (used.empty()) return InvalidArgumentError(store_url + " holds no samples between --start and --end");

  const int64_t C = static_cast<int64_t>(channels.size()), H = static_cast<int64_t>(lat.size()),
                W = static_cast<int64_t>(lon.size());
  const int64_t hours = 86400 / step;
  // The output, made whole before any data (and marked complete last).
  ASSIGN_OR_RETURN(auto out, OpenKvStore(out_url));
  RecordingKvStore recording(out.get());  // its checksum record is the last object written
  KvStore* const dst = &recording;
  ArraySpec s;
  s.zarr_format = o.zarr_format;
  s.shape = {kDays, hours, C, H, W};
  s.chunks = {1, 1, SplitLength(C, tiles.ch), SplitLength(H, tiles.lat), SplitLength(W, tiles.lon)};
  s.dtype = DataTypeFromName("float32").value();
  s.fill_value = "NaN";
  s.codec = "blosc-lz4";
  s.dimension_names = {"dayofyear", "hour", "channel", "latitude", "longitude"};
  s.attributes = {{"channels", channels}};
  ASSIGN_OR_RETURN(ArrayMetadata m, MakeArrayMetadata(s));
  const nlohmann::json identity = {{"source_fingerprint", info.attributes.value("plan_fingerprint", std::string())},
                                   {"start", FormatIsoTime(times[used.front()])},
                                   {"end", FormatIsoTime(times[used.back()])},
                                   {"window_days", o.window_days},
                                   {"window", o.uniform_window ? "uniform" : "triangular"},
                                   {"samples", used.size()}};
  // Never over what this climatology did not make: a non-empty --out must be an unfinished run of the same
  // climatology (same source data, span and window), which this run then finishes.
  RETURN_IF_ERROR(RequireEmptyOrOurs(out.get(), identity, "--out " + out_url, "this climatology"));
  RETURN_IF_ERROR(WriteGroup(dst, "", o.zarr_format,
                             {{"channels", channels}, {"jigsaw", JigsawMark("jigsaw-climatology", false, identity)}}));
  ASSIGN_OR_RETURN(auto clim, Array::Create(dst, "climatology", std::move(m)));
  std::vector<int64_t> doys(kDays), hour_values(hours);
  for (int64_t d = 0; d < kDays; ++d) doys[d] = d + 1;
  for (int64_t h = 0; h < hours; ++h) hour_values[h] = h * step / 3600;
  RETURN_IF_ERROR(WriteCoordinateArray(dst, o.zarr_format, "dayofyear", "int64",
                                       std::string_view(reinterpret_cast<const char*>(doys.data()), kDays * 8), kDays,
                                       {}));
  RETURN_IF_ERROR(WriteCoordinateArray(dst, o.zarr_format, "hour", "int64",
                                       std::string_view(reinterpret_cast<const char*>(hour_values.data()), hours * 8),
                                       hours, {{"long_name", "hour of day (UTC)"}}));
  RETURN_IF_ERROR(WriteTextCoordinateArray(dst, o.zarr_format, "channel", channels, {{"long_name", "channel"}}));
  RETURN_IF_ERROR(WriteCoordinateArray(dst, o.zarr_format, "latitude", "float64",
                                       std::string_view(reinterpret_cast<const char*>(lat.data()), H * 8), H,
                                       {{"units", "degrees_north"}, {"standard_name", "latitude"}}));
  RETURN_IF_ERROR(WriteCoordinateArray(dst, o.zarr_format, "longitude", "float64",
                                       std::string_view(reinterpret_cast<const char*>(lon.data()), W * 8), W,
                                       {{"units", "degrees_east"}, {"standard_name", "longitude"}}));

  ClimatologyReport report;
  report.samples = static_cast<int64_t>(used.size());
  report.hours = hours;
  // Each hour of day has its own axis of days, as WeatherBench2 stacks the samples of one hour by year on the
  // days of year any year has (the union: 1..366 once a leap year's 31 December is in the span). The window
  // runs circularly over that axis by position, and a year's missing days are filled from its day 365 where
  // the axis has one.
  std::vector<std::vector<int64_t>> axis(hours);  // hour -> the days of year (0-based) it has, ascending
  {
    std::vector<std::vector<bool>> seen(hours, std::vector<bool>(kDays, false));
    for (int64_t i : used) seen[SecondOfDay(times[i]) / step][DayOfYear(times[i]) - 1] = true;
    for (int64_t hr = 0; hr < hours; ++hr)
      for (int64_t d = 0; d < kDays; ++d)
        if (seen[hr][d]) axis[hr].push_back(d);
  }
  const int64_t half = o.window_days / 2;
  std::vector<double> weight(o.window_days);  // by offset + half
  for (int64_t k = -half; k <= half; ++k)
    weight[k + half] = o.uniform_window ? 1.0 : 1.0 - static_cast<double>(std::abs(k)) / static_cast<double>(half);
  // Tile by tile (a tile's lat x lon), channels in passes sized to the accumulators' memory.
  const auto lat_b = SplitBounds(H, tiles.lat), lon_b = SplitBounds(W, tiles.lon);
  for (int64_t ti = 0; ti < tiles.lat; ++ti)
    for (int64_t tj = 0; tj < tiles.lon; ++tj) {
      const int64_t y0 = lat_b[ti], h = lat_b[ti + 1] - y0, x0 = lon_b[tj], w = lon_b[tj + 1] - x0, plane = h * w;
      const int64_t per_channel = kDays * hours * plane * (8 + 4 + 4);  // sums, counts, one year's values
      const int64_t group =
          std::max<int64_t>(1, std::min<int64_t>(C, o.memory_bytes / std::max<int64_t>(per_channel, 1)));
      for (int64_t c0 = 0; c0 < C; c0 += group) {
        const int64_t nc = std::min(group, C - c0), n = nc * plane;
        ++report.passes;
        // Per (day, hour) slot and element: the sum and number over years of the values (after the fill).
        std::vector<double> sum(kDays * hours * n, 0.0);
        std::vector<uint32_t> count(kDays * hours * n, 0);
        std::vector<float> year(kDays * hours * n, std::nanf(""));  // the year being read
        // Adds the year read so far: each day of an hour's axis that the year lacks (absent or NaN) takes
        // that year's day 365 (WeatherBench2's fillna from dayofyear=365), and what is still NaN is skipped.
        auto add_year = [&] {
          for (int64_t hr = 0; hr < hours; ++hr) {
            const bool has_365 = std::binary_search(axis[hr].begin(), axis[hr].end(), int64_t{364});
            const float* fill = year.data() + (364 * hours + hr) * n;
            for (int64_t d : axis[hr]) {
              const int64_t slot = (d * hours + hr) * n;
              for (int64_t e = 0; e < n; ++e) {
                float v = year[slot + e];
                if (std::isnan(v) && has_365) v = fill[e];
                if (std::isnan(v)) continue;
                sum[slot + e] += v;
                ++count[slot + e];
              }
            }
          }
          std::fill(year.begin(), year.end(), std::nanf(""));
        };
        std::vector<float> sample(n);
        int64_t current_year = -1;
        for (int64_t i : used) {
          const int64_t y = YearOf(times[i]);
          if (y != current_year && current_year >= 0) add_year();
          current_year = y;
          const int64_t slot = ((DayOfYear(times[i]) - 1) * hours + SecondOfDay(times[i]) / step) * n;
          RETURN_IF_ERROR(data->Read(Box{{i, c0, y0, x0}, {1, nc, h, w}},
                                     std::span<char>(reinterpret_cast<char*>(year.data() + slot), n * 4)));
        }
        add_year();
        // The weighted mean over years and the window of days around each: sum of weighted sums over sum of
        // weighted counts, element by element (an element's NaN samples are left out of both).
        std::vector<float> mean(n);
        std::vector<double> total(n), weights(n);
        for (int64_t hr = 0; hr < hours; ++hr) {
          const auto& days = axis[hr];
          const int64_t L = static_cast<int64_t>(days.size());
          for (int64_t p = 0; p < L; ++p) {
            std::fill(total.begin(), total.end(), 0.0);
            std::fill(weights.begin(), weights.end(), 0.0);
            for (int64_t k = -half; k <= half; ++k) {
              const double wk = weight[k + half];
              if (wk == 0.0) continue;
              const int64_t slot = (days[((p + k) % L + L) % L] * hours + hr) * n;
              for (int64_t e = 0; e < n; ++e) {
                total[e] += wk * sum[slot + e];
                weights[e] += wk * count[slot + e];
              }
            }
            for (int64_t e = 0; e < n; ++e)
              mean[e] = weights[e] > 0 ? static_cast<float>(total[e] / weights[e]) : std::nanf("");
            const std::string_view bytes(reinterpret_cast<const char*>(mean.data()), n * 4);
            RETURN_IF_ERROR(clim->Write(Box{{days[p], hr, c0, y0, x0}, {1, 1, nc, h, w}}, bytes));
            // Without a leap year's 31 December in the span, WeatherBench2's axis ends at day 365; jigsaw
            // gives day 366 day 365's values, so that a forecast valid on a leap year's last day is scored.
            if (days[p] == 364 && !std::binary_search(days.begin(), days.end(), int64_t{365}))
              RETURN_IF_ERROR(clim->Write(Box{{365, hr, c0, y0, x0}, {1, 1, nc, h, w}}, bytes));
          }
        }
      }
    }
  RETURN_IF_ERROR(WriteGroup(dst, "", o.zarr_format,
                             {{"channels", channels}, {"jigsaw", JigsawMark("jigsaw-climatology", true, identity)}}));
  RETURN_IF_ERROR(WriteConsolidated(dst, o.zarr_format));
  RETURN_IF_ERROR(recording.WriteRecord());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log << "jigsaw-shard: climatology of " << report.samples << " samples (" << FormatIsoTime(times[used.front()])
      << " to " << FormatIsoTime(times[used.back()]) << "), " << o.window_days << "-day "
      << (o.uniform_window ? "uniform" : "triangular") << " window, " << hours << " hours of day: " << out_url << "\n";
  return report;
}

}  // namespace jigsaw
