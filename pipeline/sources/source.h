// A reanalysis source (Zarr store, NetCDF or GRIB files) seen in one canonical orientation:
// latitude north -> south (descending), longitude ascending in [0, 360), values float32 with CF packing
// undone (missing values as NaN), times as seconds since 1970-01-01, variable names as WeatherBench2's
// long names (CDS short names are accepted as aliases).
//
// A Source is immutable after opening and safe to read from many threads.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace jigsaw {

struct VariableInfo {
  std::string name;            // canonical long name ("temperature")
  std::vector<double> levels;  // pressure levels as stored (hPa), empty for a surface variable
  std::string units;           // as the source says ("K", "m**2 s**-2"); "" when it does not
};

struct SourceGrid {
  std::vector<double> latitude;   // descending
  std::vector<double> longitude;  // ascending, in [0, 360)
  // The source's own order before the canonical one: "latitude 90 to -90, longitude -180 to 179.75".
  std::string as_stored;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual std::string url() const = 0;
  virtual const SourceGrid& grid() const = 0;
  virtual const std::vector<VariableInfo>& variables() const = 0;
  virtual const std::vector<int64_t>& times() const = 0;  // ascending
  // Why a variable of this name is in the source but cannot be read (OK when it is readable or absent): a
  // dimension jigsaw does not know (kUnimplemented), an ensemble member not chosen (kInvalidArgument), ...
  virtual Status Unusable(const std::string& /*name*/) const { return OkStatus(); }
  // Why this source cannot give `name` at time index `t` for these level indices although the time is in
  // times() ("" when it can): GRIB files need not hold every variable at every level and time.
  virtual std::string Lacks(const std::string& /*name*/, int64_t /*t*/, std::span<const int64_t> /*levels*/) const {
    return "";
  }
  // Reads variable `name` at time index `t` for the given level indices (into VariableInfo::levels; empty
  // for a surface variable) into out[level][lat][lon], canonical orientation.
  virtual Status Read(const std::string& name, int64_t t, std::span<const int64_t> levels, float* out) const = 0;

  // Time-independent fields (land-sea mask, orography, soil type), by canonical name: the source's
  // (latitude, longitude) variables.
  const std::vector<std::string>& static_variables() const { return static_names_; }
  // The values along the source's member dimension (`number`, `realization`, `member`) when it has one
  // longer than 1; empty otherwise.
  virtual std::vector<int64_t> members() const { return {}; }
  // Reads the time-independent field `name` into out[lat][lon] (canonical orientation): a static variable,
  // else a single-level variable at its first time (CDS files deliver land-sea mask and orography with a
  // time). kNotFound when the source has neither; kInvalidArgument for a variable on pressure levels.
  Status ReadStatic(const std::string& name, float* out) const;
  bool HasStatic(std::string_view name) const;

  const VariableInfo* FindVariable(std::string_view name) const;

 protected:
  // A name of static_variables() into out[lat][lon].
  virtual Status ReadStaticVariable(const std::string& name, float* /*out*/) const {
    return NotFoundError("no static variable \"" + name + "\"");
  }
  std::vector<std::string> static_names_;  // filled by sources that have static variables
};

// How to open a source. An ensemble source (a member dimension: `number`, `realization`, `member`) is read
// as the one member named here and refused without it; a source without members refuses a member other than
// the one it may name in a scalar `number`.
struct SourceOptions {
  std::optional<int64_t> member;
  // Without `member`: open an ensemble source as its first member instead of refusing it, so that
  // members() can say which there are (jigsaw-shard --members all then opens one source per member).
  bool first_member = false;
};

// A Zarr store in the WB2 / ARCO layout (any dimension order, either latitude order, longitude in
// [0, 360) or [-180, 180), levels in any order, CF times).
Result<std::unique_ptr<Source>> OpenZarrSource(std::string_view url, const SourceOptions& options = {});
// One NetCDF file as downloaded from the Copernicus CDS, new layout (valid_time, pressure_level) or legacy
// (time, level, int16 packed).
Result<std::unique_ptr<Source>> OpenNetcdfSource(std::string_view path, const SourceOptions& options = {});
// One GRIB file (edition 1 or 2, regular lat/lon grid, any scanning direction), indexed once and the index
// cached (pipeline/sources/grib_index.h); variables named from shortName and typeOfLevel (GribVariableOf),
// pressure levels in hPa (isobaricInPa converted), times from each message's validity date and time.
Result<std::unique_ptr<Source>> OpenGribSource(std::string_view path, const SourceOptions& options = {});
// Chooses by the path: *.nc / *.nc4 / *.netcdf files are NetCDF, *.grib / *.grb / *.grib2 / *.grb2 GRIB,
// everything else Zarr; globs expand to one source per matching file (sorted), opened in parallel.
Result<std::vector<std::unique_ptr<Source>>> OpenSources(std::string_view spec, const SourceOptions& options = {});
// The suffixes OpenSources goes by: NetCDF files, GRIB files (anything else is a Zarr store).
bool IsNetcdfPath(std::string_view path);
bool IsGribPath(std::string_view path);

// The whole object at `url` (a NetCDF or GRIB file in an object store), for libraries that read local files
// or memory only.
Result<std::string> FetchSourceObject(std::string_view url);

// The index to read along member dimension `dim` of `source` whose coordinate is `values` (0..n-1 when it
// has none): the member chosen in `options`, or the only one; several and no choice is refused by name.
Result<int64_t> MemberIndex(std::string_view source, std::string_view dim, std::span<const double> values,
                            const SourceOptions& options);

// A level, a member or a coordinate as names and messages write it ("%g": 500, 0.01, 359.75).
std::string FormatNumber(double v);

// Name aliases: CDS short names and dimension names.
std::string CanonicalVariableName(std::string_view name);  // "t2m" -> "2m_temperature"; others unchanged
// The short names (CDS NetCDF, then GRIB where it differs) of a canonical name: "2m_temperature" -> t2m, 2t.
std::vector<std::string> ShortVariableNames(std::string_view canonical);
// ERA5's units of a canonical variable ("" for one jigsaw does not know), for sources that do not say (GRIB
// files, whose ecCodes parameter tables give these).
std::string Era5Units(std::string_view canonical);
// A variable's name when it has a single level (no pressure levels): the geopotential there is the surface
// geopotential (orography), named z in CDS and GRIB files alike; others unchanged.
std::string SingleLevelVariableName(std::string canonical);
enum class DimRole { kTime, kLevel, kLatitude, kLongitude, kMember, kOther };
DimRole RoleOfDimension(std::string_view name);
// A GRIB message's variable from its shortName and typeOfLevel: pressure levels (isobaricInhPa, isobaricInPa)
// or one level (surface, meanSea, heightAboveGround, entireAtmosphere); `z` on one level is
// geopotential_at_surface. Empty name for other level types (hybrid, soil layers, ...).
struct GribVariable {
  std::string name;
  bool pressure = false;
};
GribVariable GribVariableOf(std::string_view short_name, std::string_view level_type);

// The block a source reads for one time, a set of level indices and a member index: per dimension (of the variable, in
// its order) the start and count, and the C-order strides of the block.
struct SourceBlock {
  std::vector<int64_t> start, count, stride;
  int64_t elements = 1, lmin = 0;
  int lat_dim = -1, lon_dim = -1, level_dim = -1;
};
SourceBlock BlockFor(std::span<const DimRole> roles, std::span<const int64_t> dims, int64_t t,
                     std::span<const int64_t> levels, int64_t member_index = 0);

// How a source's (lat, lon) plane maps onto the canonical one, and the copy that applies it.
struct PlaneOrientation {
  bool flip_lat = false;            // source latitude ascending
  std::vector<int64_t> lon_source;  // canonical longitude index -> source longitude index
  // Builds it from source coordinates, returning the canonical grid in *grid.
  static Result<PlaneOrientation> From(const std::vector<double>& lat, const std::vector<double>& lon,
                                       SourceGrid* grid);
  // out[y][x] = src[lat_src(y) * lat_stride + lon_source[x] * lon_stride].
  void Apply(const float* src, int64_t lat_stride, int64_t lon_stride, int64_t nlat, float* out) const;
  // out[level][lat][lon] for the requested levels from a block's values (float32, the block's C order).
  void ApplyLevels(const float* values, const SourceBlock& block, std::span<const int64_t> levels, int64_t nlat,
                   float* out) const;
  // True when ApplyLevels would copy the block as it is (canonical orientation, the levels in block order,
  // nothing else in the block): a source may then decode straight into `out`.
  bool KeepsBlockAsIs(const SourceBlock& block, std::span<const int64_t> levels, int64_t nlat) const;
};

}  // namespace jigsaw
