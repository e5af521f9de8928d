#include "pipeline/shard/synthetic.h"

#include <cmath>
#include <random>

#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"

namespace jigsaw {
namespace {

constexpr double kLevels[] = {50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000};
constexpr int kNumLevels = 13;

Status WriteArray(KvStore* out, int format, const std::string& name, const std::string& dtype,
                  std::vector<int64_t> shape, std::vector<int64_t> chunks, std::vector<std::string> dims,
                  std::string_view bytes, json attrs) {
  ArraySpec s;
  s.zarr_format = format;
  s.shape = std::move(shape);
  s.chunks = std::move(chunks);
  s.dtype = DataTypeFromName(dtype).value();
  s.fill_value = dtype == "int64" ? json(0) : json("NaN");
  s.codec = "blosc-lz4";
  s.dimension_names = std::move(dims);
  s.attributes = std::move(attrs);
  ASSIGN_OR_RETURN(ArrayMetadata m, MakeArrayMetadata(s));
  ASSIGN_OR_RETURN(auto a, Array::Create(out, name, std::move(m)));
  return a->Write(a->full_box(), bytes);
}

template <typename T>
std::string_view Bytes(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

}  // namespace

Status WriteSyntheticEra5(KvStore* out, const SyntheticSpec& s) {
  if (s.nlat < 2 || s.nlon < 2 || s.ntime < 1)
    return InvalidArgumentError("synthetic grid needs at least 2x2 points and 1 time");
  ASSIGN_OR_RETURN(int64_t t0, ParseIsoTime(s.start));
  const int f = s.zarr_format;
  std::vector<double> lat(s.nlat), lon(s.nlon), levels(kLevels, kLevels + kNumLevels);
  for (int64_t i = 0; i < s.nlat; ++i) lat[i] = 90.0 - 180.0 * i / (s.nlat - 1);
  if (s.lat_ascending) std::reverse(lat.begin(), lat.end());
  for (int64_t j = 0; j < s.nlon; ++j) {
    lon[j] = 360.0 * j / s.nlon;
    if (s.lon_signed) lon[j] = -180.0 + 360.0 * j / s.nlon;
  }
  if (s.levels_descending) std::reverse(levels.begin(), levels.end());
  std::vector<int64_t> hours(s.ntime);
  const int64_t epoch1959 = ParseIsoTime("1959-01-01").value();
  for (int64_t t = 0; t < s.ntime; ++t) hours[t] = (t0 + t * s.step_seconds - epoch1959) / 3600;

  RETURN_IF_ERROR(WriteGroup(out, "", f, {{"title", "synthetic ERA5-like data (jigsaw-shard synth)"}}));
  RETURN_IF_ERROR(WriteArray(out, f, "time", "int64", {s.ntime}, {s.ntime}, {"time"}, Bytes(hours),
                             {{"units", "hours since 1959-01-01"}, {"calendar", "proleptic_gregorian"}}));
  RETURN_IF_ERROR(WriteArray(out, f, "latitude", "float64", {s.nlat}, {s.nlat}, {"latitude"}, Bytes(lat),
                             {{"units", "degrees_north"}}));
  RETURN_IF_ERROR(WriteArray(out, f, "longitude", "float64", {s.nlon}, {s.nlon}, {"longitude"}, Bytes(lon),
                             {{"units", "degrees_east"}}));
  std::vector<int64_t> ilevels(levels.begin(), levels.end());
  RETURN_IF_ERROR(
      WriteArray(out, f, "level", "int64", {kNumLevels}, {kNumLevels}, {"level"}, Bytes(ilevels), {{"units", "hPa"}}));

  std::mt19937 rng(s.seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int64_t plane = s.nlat * s.nlon;
  // field(kind, level hPa or 0 for surface, t): smooth, with a travelling wave and a little noise.
  auto field = [&](int kind, double p, int64_t t, float* out) {
    const double ph = 0.3 * t + 0.7 * kind;
    for (int64_t i = 0; i < s.nlat; ++i) {
      const double la = lat[i] * M_PI / 180.0, c = std::cos(la);
      for (int64_t j = 0; j < s.nlon; ++j) {
        const double lo = lon[j] * M_PI / 180.0;
        const double wave = c * std::sin(2 * lo + ph) + 0.5 * std::sin(3 * la + ph) * std::cos(lo - ph);
        double v = 0, amp = 1;
        const double height = p > 0 ? 7000.0 * std::log(1000.0 / p) : 0;  // metres
        switch (kind) {
          case 0:
            v = 9.80665 * (height + 150 * c * c);
            amp = 300 + 0.05 * height;
            break;  // geopotential
          case 1:
            v = 215 + 75 * c * c - 0.0065 * std::min(height, 11000.0) + (p > 0 && p < 200 ? 10 : 0);
            amp = 5;
            break;  // temperature
          case 2:
            v = 35 * std::exp(-std::pow((std::abs(lat[i]) - 35) / 12, 2)) *
                (p > 0 ? std::min(1.0, 300 / p + 0.2) : 0.3);
            amp = 6;
            break;  // u wind
          case 3:
            v = 0;
            amp = 8;
            break;  // v wind
          case 4:
            v = 0.018 * c * c * std::pow(p / 1000.0, 3);
            amp = 0.001 * std::pow(p / 1000.0, 3);
            break;  // specific humidity
          case 5:
            v = 228 + 72 * c * c;
            amp = 4;
            break;  // 2 m temperature
          case 6:
            v = 101325 - 1500 * std::cos(2 * la);
            amp = 800;
            break;  // mean sea level pressure
          case 7:
            v = 5 * std::sin(2 * la);
            amp = 4;
            break;  // 10 m u
          default:
            v = 0;
            amp = 3;
            break;  // 10 m v
        }
        out[i * s.nlon + j] = static_cast<float>(v + amp * wave) + 0.01f * static_cast<float>(amp) * noise(rng);
      }
    }
    if (kind == 4)
      for (int64_t k = 0; k < plane; ++k) out[k] = std::max(out[k], 0.0f);
  };
  const char* pvars[] = {"geopotential", "temperature", "u_component_of_wind", "v_component_of_wind",
                         "specific_humidity"};
  const char* punits[] = {"m2 s-2", "K", "m s-1", "m s-1", "kg kg-1"};
  const char* svars[] = {"2m_temperature", "mean_sea_level_pressure", "10m_u_component_of_wind",
                         "10m_v_component_of_wind"};
  const char* sunits[] = {"K", "Pa", "m s-1", "m s-1"};
  for (int k = 0; k < 5; ++k) {
    std::vector<float> v(s.ntime * kNumLevels * plane);
    for (int64_t t = 0; t < s.ntime; ++t)
      for (int l = 0; l < kNumLevels; ++l) field(k, levels[l], t, v.data() + (t * kNumLevels + l) * plane);
    RETURN_IF_ERROR(WriteArray(out, f, pvars[k], "float32", {s.ntime, kNumLevels, s.nlat, s.nlon},
                               {1, kNumLevels, s.nlat, s.nlon}, {"time", "level", "latitude", "longitude"}, Bytes(v),
                               {{"units", punits[k]}}));
  }
  for (int k = 0; k < 4; ++k) {
    std::vector<float> v(s.ntime * plane);
    for (int64_t t = 0; t < s.ntime; ++t) field(5 + k, 0, t, v.data() + t * plane);
    RETURN_IF_ERROR(WriteArray(out, f, svars[k], "float32", {s.ntime, s.nlat, s.nlon}, {1, s.nlat, s.nlon},
                               {"time", "latitude", "longitude"}, Bytes(v), {{"units", sunits[k]}}));
  }
  // Time-independent fields as WB2 stores them: (latitude, longitude) arrays. Land where a few smooth
  // "continents" rise above sea level; orography there; soil types 1..7 on land, 0 at sea.
  std::vector<float> lsm(plane), orography(plane), soil(plane);
  for (int64_t i = 0; i < s.nlat; ++i) {
    const double la = lat[i] * M_PI / 180.0;
    for (int64_t j = 0; j < s.nlon; ++j) {
      const double lo = lon[j] * M_PI / 180.0;
      const double h = std::sin(2 * lo) * std::cos(la) + 0.6 * std::cos(3 * lo + 1) * std::sin(2 * la + 0.5) - 0.2;
      const int64_t k = i * s.nlon + j;
      lsm[k] = h > 0 ? 1.0f : 0.0f;
      orography[k] = static_cast<float>(9.80665 * 2500 * std::max(0.0, h));
      soil[k] = h > 0 ? static_cast<float>(1 + static_cast<int>(7 * std::abs(std::sin(5 * lo + 3 * la))) % 7) : 0.0f;
    }
  }
  const std::pair<const char*, const std::vector<float>*> statics[] = {
      {"land_sea_mask", &lsm}, {"geopotential_at_surface", &orography}, {"soil_type", &soil}};
  const char* static_units[] = {"(0 - 1)", "m2 s-2", "~"};
  for (int k = 0; k < 3; ++k) {
    RETURN_IF_ERROR(WriteArray(out, f, statics[k].first, "float32", {s.nlat, s.nlon}, {s.nlat, s.nlon},
                               {"latitude", "longitude"}, Bytes(*statics[k].second), {{"units", static_units[k]}}));
  }
  return WriteConsolidated(out, f);
}

}  // namespace jigsaw
