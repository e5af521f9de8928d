// Names as found in the wild, mapped onto WeatherBench2's.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "pipeline/sources/source.h"

namespace jigsaw {

namespace {
const std::pair<const char*, const char*> kAliases[] = {
      {"z", "geopotential"},
      {"t", "temperature"},
      {"q", "specific_humidity"},
      {"u", "u_component_of_wind"},
      {"v", "v_component_of_wind"},
      {"w", "vertical_velocity"},
      {"r", "relative_humidity"},
      {"t2m", "2m_temperature"},
      {"2t", "2m_temperature"},  // GRIB shortNames where they differ from the NetCDF ones
      {"10u", "10m_u_component_of_wind"},
      {"10v", "10m_v_component_of_wind"},
      {"lsm", "land_sea_mask"},
      {"slt", "soil_type"},
      {"sdor", "standard_deviation_of_orography"},
      {"skt", "skin_temperature"},
      {"sst", "sea_surface_temperature"},
      {"msl", "mean_sea_level_pressure"},
      {"u10", "10m_u_component_of_wind"},
      {"v10", "10m_v_component_of_wind"},
      {"sp", "surface_pressure"},
      {"tp", "total_precipitation"},
      {"tcwv", "total_column_water_vapour"},
};
}  // namespace

std::string CanonicalVariableName(std::string_view name) {
  for (const auto& [s, l] : kAliases)
    if (name == s) return l;
  return std::string(name);
}

std::vector<std::string> ShortVariableNames(std::string_view canonical) {
  if (canonical == "geopotential_at_surface") canonical = "geopotential";  // z on a single level
  std::vector<std::string> out;
  for (const auto& [s, l] : kAliases)
    if (canonical == l) out.push_back(s);
  // CDS NetCDF files name the 10 m winds u10/v10, GRIB 10u/10v; t2m and 2t likewise: NetCDF's first.
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return !std::isdigit(static_cast<unsigned char>(a[0])) && std::isdigit(static_cast<unsigned char>(b[0]));
  });
  return out;
}

std::string Era5Units(std::string_view canonical) {
  static const std::pair<const char*, const char*> kUnits[] = {
      {"geopotential", "m**2 s**-2"}, {"geopotential_at_surface", "m**2 s**-2"},
      {"temperature", "K"}, {"2m_temperature", "K"}, {"skin_temperature", "K"}, {"sea_surface_temperature", "K"},
      {"specific_humidity", "kg kg**-1"}, {"relative_humidity", "%"},
      {"u_component_of_wind", "m s**-1"}, {"v_component_of_wind", "m s**-1"},
      {"10m_u_component_of_wind", "m s**-1"}, {"10m_v_component_of_wind", "m s**-1"},
      {"vertical_velocity", "Pa s**-1"}, {"mean_sea_level_pressure", "Pa"}, {"surface_pressure", "Pa"},
      {"total_precipitation", "m"}, {"total_column_water_vapour", "kg m**-2"}, {"land_sea_mask", "(0 - 1)"},
      {"soil_type", "~"}, {"standard_deviation_of_orography", "m"},
  };
  for (const auto& [n, u] : kUnits)
    if (canonical == n) return u;
  return "";
}

std::string SingleLevelVariableName(std::string canonical) {
  return canonical == "geopotential" ? "geopotential_at_surface" : canonical;
}

std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

DimRole RoleOfDimension(std::string_view n) {
  if (n == "time" || n == "valid_time") return DimRole::kTime;
  if (n == "level" || n == "pressure_level" || n == "isobaricInhPa" || n == "plev") return DimRole::kLevel;
  if (n == "latitude" || n == "lat") return DimRole::kLatitude;
  if (n == "longitude" || n == "lon") return DimRole::kLongitude;
  if (n == "number" || n == "realization" || n == "member" || n == "ensemble_member") return DimRole::kMember;
  return DimRole::kOther;
}

GribVariable GribVariableOf(std::string_view short_name, std::string_view level_type) {
  if (level_type == "isobaricInhPa" || level_type == "isobaricInPa") return {CanonicalVariableName(short_name), true};
  if (level_type == "surface" || level_type == "meanSea" || level_type == "heightAboveGround" ||
      level_type == "entireAtmosphere" || level_type == "sfc") {
    return {SingleLevelVariableName(CanonicalVariableName(short_name)), false};
  }
  return {};
}

Result<int64_t> MemberIndex(std::string_view source, std::string_view dim, std::span<const double> values,
                            const SourceOptions& options) {
  std::string list;
  for (size_t i = 0; i < values.size() && i < 12; ++i) list += (i ? ", " : "") + FormatNumber(values[i]);
  if (values.size() > 12) list += ", ...";
  const std::string prefix = source.empty() ? "" : std::string(source) + ": ";
  if (!options.member) {
    if (values.size() == 1 || options.first_member) return 0;
    return InvalidArgumentError(prefix + "an ensemble: dimension \"" + std::string(dim) + "\" has " +
                                std::to_string(values.size()) + " members (" + list +
                                "): choose one with --member N, or --members all");
  }
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] == static_cast<double>(*options.member)) return static_cast<int64_t>(i);
  return InvalidArgumentError(prefix + "no member " + std::to_string(*options.member) + " along \"" + std::string(dim) +
                              "\" (it has " + list + ")");
}

bool Source::HasStatic(std::string_view name) const {
  const std::string canonical = CanonicalVariableName(name);
  for (const auto& s : static_variables())
    if (s == canonical) return true;
  return FindVariable(canonical) != nullptr;
}

Status Source::ReadStatic(const std::string& name, float* out) const {
  const std::string canonical = CanonicalVariableName(name);
  for (const auto& s : static_variables())
    if (s == canonical) return ReadStaticVariable(canonical, out);
  const VariableInfo* v = FindVariable(canonical);
  if (!v) return NotFoundError(url() + ": no variable \"" + name + "\"");
  if (!v->levels.empty()) {
    return InvalidArgumentError(url() + ": " + canonical +
                                " is on pressure levels; a static field is a single-level variable");
  }
  for (size_t t = 0; t < times().size(); ++t) {
    if (Lacks(canonical, static_cast<int64_t>(t), {}).empty()) return Read(canonical, static_cast<int64_t>(t), {}, out);
  }
  return NotFoundError(url() + ": no time holds " + canonical);
}

const VariableInfo* Source::FindVariable(std::string_view name) const {
  std::string canonical = CanonicalVariableName(name);
  for (const auto& v : variables())
    if (v.name == canonical) return &v;
  return nullptr;
}

Result<PlaneOrientation> PlaneOrientation::From(const std::vector<double>& lat, const std::vector<double>& lon,
                                                SourceGrid* grid) {
  PlaneOrientation o;
  if (lat.size() < 2 || lon.size() < 2) return InvalidArgumentError("latitude and longitude need at least 2 points");
  for (size_t i = 0; i < lat.size(); ++i) {
    if (!std::isfinite(lat[i]) || lat[i] < -90 || lat[i] > 90) {
      return InvalidArgumentError("latitude[" + std::to_string(i) + "] is " + std::to_string(lat[i]) +
                                  ": latitudes must be finite degrees in [-90, 90]");
    }
  }
  for (size_t i = 0; i < lon.size(); ++i) {
    if (!std::isfinite(lon[i])) {
      return InvalidArgumentError("longitude[" + std::to_string(i) + "] is " + std::to_string(lon[i]) +
                                  ": longitudes must be finite degrees");
    }
  }
  bool asc = lat[1] > lat[0];
  for (size_t i = 1; i < lat.size(); ++i)
    if ((lat[i] > lat[i - 1]) != asc || lat[i] == lat[i - 1]) return InvalidArgumentError("latitude is not monotonic");
  o.flip_lat = asc;
  grid->as_stored = "latitude " + FormatNumber(lat.front()) + " to " + FormatNumber(lat.back()) + ", longitude " +
                    FormatNumber(lon.front()) + " to " + FormatNumber(lon.back());
  grid->latitude = lat;
  if (asc) std::reverse(grid->latitude.begin(), grid->latitude.end());
  std::vector<double> wrapped(lon.size());
  for (size_t i = 0; i < lon.size(); ++i) {
    double w = std::fmod(lon[i], 360.0);
    if (w < 0) w += 360.0;
    wrapped[i] = w;
  }
  o.lon_source.resize(lon.size());
  std::iota(o.lon_source.begin(), o.lon_source.end(), 0);
  std::stable_sort(o.lon_source.begin(), o.lon_source.end(),
                   [&](int64_t a, int64_t b) { return wrapped[a] < wrapped[b]; });
  grid->longitude.resize(lon.size());
  for (size_t i = 0; i < lon.size(); ++i) {
    grid->longitude[i] = wrapped[o.lon_source[i]];
    if (i && grid->longitude[i] == grid->longitude[i - 1]) return InvalidArgumentError("longitude has duplicates");
  }
  return o;
}

SourceBlock BlockFor(std::span<const DimRole> roles, std::span<const int64_t> dims, int64_t t,
                     std::span<const int64_t> levels, int64_t member_index) {
  SourceBlock b;
  const size_t rank = roles.size();
  b.start.assign(rank, 0);
  b.count.assign(rank, 1);
  int64_t lmax = 0;
  if (!levels.empty()) {
    b.lmin = *std::min_element(levels.begin(), levels.end());
    lmax = *std::max_element(levels.begin(), levels.end());
  }
  for (size_t d = 0; d < rank; ++d) {
    const int dim = static_cast<int>(d);
    switch (roles[d]) {
      case DimRole::kTime: b.start[d] = t; break;
      case DimRole::kLevel:
        b.start[d] = b.lmin;
        b.count[d] = lmax - b.lmin + 1;
        b.level_dim = dim;
        break;
      case DimRole::kLatitude:
        b.count[d] = dims[d];
        b.lat_dim = dim;
        break;
      case DimRole::kLongitude:
        b.count[d] = dims[d];
        b.lon_dim = dim;
        break;
      case DimRole::kMember: b.start[d] = member_index; break;
      case DimRole::kOther: break;
    }
  }
  b.stride.assign(rank, 0);
  for (size_t d = rank; d-- > 0;) {
    b.stride[d] = b.elements;
    b.elements *= b.count[d];
  }
  return b;
}

void PlaneOrientation::ApplyLevels(const float* values, const SourceBlock& b, std::span<const int64_t> levels,
                                   int64_t nlat, float* out) const {
  const int64_t plane = nlat * static_cast<int64_t>(lon_source.size());
  const int64_t nlevels = levels.empty() ? 1 : static_cast<int64_t>(levels.size());
  for (int64_t li = 0; li < nlevels; ++li) {
    const float* base = values + (levels.empty() ? 0 : (levels[li] - b.lmin) * b.stride[b.level_dim]);
    Apply(base, b.stride[b.lat_dim], b.stride[b.lon_dim], nlat, out + li * plane);
  }
}

bool PlaneOrientation::KeepsBlockAsIs(const SourceBlock& b, std::span<const int64_t> levels, int64_t nlat) const {
  const int64_t nlon = static_cast<int64_t>(lon_source.size());
  if (flip_lat || b.lat_dim < 0 || b.lon_dim < 0 || b.stride[b.lon_dim] != 1 || b.stride[b.lat_dim] != nlon)
    return false;
  for (int64_t x = 0; x < nlon; ++x)
    if (lon_source[x] != x) return false;
  const int64_t nlevels = levels.empty() ? 1 : static_cast<int64_t>(levels.size());
  for (int64_t li = 0; li < static_cast<int64_t>(levels.size()); ++li)
    if (levels[li] - b.lmin != li) return false;
  if (!levels.empty() && b.level_dim >= 0 && b.stride[b.level_dim] != nlat * nlon) return false;
  return b.elements == nlevels * nlat * nlon;
}

void PlaneOrientation::Apply(const float* src, int64_t lat_stride, int64_t lon_stride, int64_t nlat, float* out) const {
  const int64_t nlon = static_cast<int64_t>(lon_source.size());
  for (int64_t y = 0; y < nlat; ++y) {
    const float* row = src + (flip_lat ? nlat - 1 - y : y) * lat_stride;
    float* dst = out + y * nlon;
    if (lon_stride == 1) {
      // Longitudes are a rotation in the common cases: copy contiguous runs.
      int64_t x = 0;
      while (x < nlon) {
        int64_t start = lon_source[x], run = 1;
        while (x + run < nlon && lon_source[x + run] == start + run) ++run;
        std::memcpy(dst + x, row + start, run * sizeof(float));
        x += run;
      }
    } else {
      for (int64_t x = 0; x < nlon; ++x) dst[x] = row[lon_source[x] * lon_stride];
    }
  }
}

}  // namespace jigsaw
