// Zarr reanalysis stores (WeatherBench2 / ARCO-ERA5 layouts), any dimension order and orientation.
#include <cmath>
#include <cstring>
#include <map>

#include <tbb/task_arena.h>

#include "pipeline/sources/source.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"

namespace jigsaw {
namespace {

struct ZarrVariable {
  std::unique_ptr<Array> array;
  std::vector<DimRole> roles;  // per array dimension
  CfPacking packing;
  int64_t member_index = 0;  // along its member dimension, if it has one
};

Result<std::vector<double>> ReadDoubles(const Array& a) {
  const ArrayMetadata& m = a.metadata();
  std::string raw(a.full_box().num_elements() * m.dtype.size, '\0');
  RETURN_IF_ERROR(a.Read(a.full_box(), raw));
  std::vector<double> out(a.full_box().num_elements());
  for (size_t i = 0; i < out.size(); ++i) out[i] = ElementToDouble(raw.data() + i * m.dtype.size, m.dtype);
  return out;
}

class ZarrSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Open(std::string_view url, const SourceOptions& options) {
    auto src = std::unique_ptr<ZarrSource>(new ZarrSource());
    ASSIGN_OR_RETURN(src->store_, OpenKvStore(url));
    RETURN_IF_ERROR(src->Load(options).Annotate(std::string(url)));
    return std::unique_ptr<Source>(std::move(src));
  }

  std::string url() const override { return store_->url(); }
  std::vector<int64_t> members() const override { return members_; }
  const SourceGrid& grid() const override { return grid_; }
  const std::vector<VariableInfo>& variables() const override { return variables_; }
  const std::vector<int64_t>& times() const override { return times_; }

  Status Read(const std::string& name, int64_t t, std::span<const int64_t> levels, float* out) const override {
    auto it = vars_.find(name);
    if (it == vars_.end()) return NotFoundError(url() + ": no variable \"" + name + "\"");
    return ReadBlock(it->second, t, levels, out).Annotate("variable " + name + " at " + FormatIsoTime(times_[t]));
  }

 protected:
  Status ReadStaticVariable(const std::string& name, float* out) const override {
    auto it = statics_.find(name);
    if (it == statics_.end()) return NotFoundError(url() + ": no static variable \"" + name + "\"");
    return ReadBlock(it->second, 0, {}, out).Annotate("static variable " + name);
  }

 private:
  // Variable `v` at time index `t` (ignored without a time dimension) for the level indices into out.
  Status ReadBlock(const ZarrVariable& v, int64_t t, std::span<const int64_t> levels, float* out) const {
    const ArrayMetadata& m = v.array->metadata();
    const SourceBlock block = BlockFor(v.roles, m.shape, t, levels, v.member_index);
    const Box box{block.start, block.count};
    const int64_t n = block.elements;
    if (m.dtype.name == "float32" && !v.packing.is_packed() &&
        orientation_.KeepsBlockAsIs(block, levels, static_cast<int64_t>(grid_.latitude.size()))) {
      // Decoded where it belongs: no copy (and no thread-local buffer, so no isolation needed).
      return v.array->Read(box, std::span<char>(reinterpret_cast<char*>(out), n * 4));
    }
    thread_local std::string raw;
    thread_local std::vector<float> converted;
    raw.resize(n * m.dtype.size);
    // Isolated: while this thread waits for the chunk reads, it must not pick up another Read() of the
    // caller's parallel loop, which would reuse `raw` underneath us.
    Status read_status;
    tbb::this_task_arena::isolate([&] { read_status = v.array->Read(box, raw); });
    RETURN_IF_ERROR(read_status);
    const float* values;
    if (m.dtype.name == "float32" && !v.packing.is_packed()) {
      values = reinterpret_cast<const float*>(raw.data());
    } else {
      converted.resize(n);
      thread_local std::vector<double> tmp;
      tmp.resize(n);
      UnpackCf(raw.data(), m.dtype, n, v.packing, tmp.data());
      for (int64_t i = 0; i < n; ++i) converted[i] = static_cast<float>(tmp[i]);
      values = converted.data();
    }
    orientation_.ApplyLevels(values, block, levels, grid_.latitude.size(), out);
    return OkStatus();
  }

  Status Load(const SourceOptions& options) {
    ASSIGN_OR_RETURN(auto nodes, ListNodes(store_.get()));
    std::map<DimRole, std::string> coord;  // role -> array path of the coordinate
    for (const auto& n : nodes) {
      if (!n.meta.is_array) continue;
      const auto& dims = n.meta.array->dimension_names;
      if (dims.size() == 1 && dims[0] == n.path && RoleOfDimension(n.path) != DimRole::kOther) {
        coord[RoleOfDimension(n.path)] = n.path;
      }
    }
    for (DimRole r : {DimRole::kTime, DimRole::kLatitude, DimRole::kLongitude}) {
      if (!coord.count(r)) {
        return InvalidArgumentError(std::string("no ") +
                                    (r == DimRole::kTime       ? "time (or valid_time)"
                                     : r == DimRole::kLatitude ? "latitude (or lat)"
                                                               : "longitude (or lon)") +
                                    " coordinate array (with _ARRAY_DIMENSIONS / dimension_names)");
      }
    }
    ASSIGN_OR_RETURN(auto time_array, Array::Open(store_.get(), coord[DimRole::kTime]));
    // Coordinates and data are read whole-chunk-or-error: a missing chunk of a source is missing data, not
    // the fill value (which would turn into NaN coordinates, or NaN tiles in a store marked complete).
    time_array->RequireEveryChunk(true);
    const json& tattrs = time_array->metadata().attributes;
    if (!tattrs.contains("units") || !tattrs["units"].is_string()) {
      return InvalidArgumentError("time coordinate \"" + coord[DimRole::kTime] + "\" has no CF units attribute");
    }
    ASSIGN_OR_RETURN(CfTimeUnits units,
                     ParseCfTimeUnits(tattrs["units"].get<std::string>(), tattrs.value("calendar", "")));
    ASSIGN_OR_RETURN(auto tvals, ReadDoubles(*time_array));
    for (size_t i = 0; i < tvals.size(); ++i) {
      if (!std::isfinite(tvals[i]))
        return InvalidArgumentError("time[" + std::to_string(i) + "] is not a finite number");
    }
    times_ = DecodeCfTimes(tvals, units);
    for (size_t i = 1; i < times_.size(); ++i) {
      if (times_[i] <= times_[i - 1])
        return InvalidArgumentError("times are not strictly increasing at " + FormatIsoTime(times_[i]));
    }
    ASSIGN_OR_RETURN(auto lat_array, Array::Open(store_.get(), coord[DimRole::kLatitude]));
    ASSIGN_OR_RETURN(auto lon_array, Array::Open(store_.get(), coord[DimRole::kLongitude]));
    lat_array->RequireEveryChunk(true);
    lon_array->RequireEveryChunk(true);
    ASSIGN_OR_RETURN(auto lat, ReadDoubles(*lat_array));
    ASSIGN_OR_RETURN(auto lon, ReadDoubles(*lon_array));
    ASSIGN_OR_RETURN(orientation_, PlaneOrientation::From(lat, lon, &grid_));
    std::vector<double> levels;
    if (coord.count(DimRole::kLevel)) {
      ASSIGN_OR_RETURN(auto level_array, Array::Open(store_.get(), coord[DimRole::kLevel]));
      level_array->RequireEveryChunk(true);
      ASSIGN_OR_RETURN(levels, ReadDoubles(*level_array));
    }
    for (const auto& n : nodes) {
      if (!n.meta.is_array) continue;
      const ArrayMetadata& m = *n.meta.array;
      if (m.dimension_names.size() != m.shape.size()) continue;
      ZarrVariable v;
      bool has[6] = {};
      std::string unknown;    // a dimension jigsaw does not know, longer than 1
      Status unknown_member;  // why no member can be read (none chosen, or not there)
      for (size_t d = 0; d < m.shape.size(); ++d) {
        DimRole r = RoleOfDimension(m.dimension_names[d]);
        v.roles.push_back(r);
        has[static_cast<int>(r)] = true;
        if (r == DimRole::kOther && m.shape[d] != 1)
          unknown = "\"" + m.dimension_names[d] + "\" (" + std::to_string(m.shape[d]) + ")";
        if (r == DimRole::kMember) {
          auto member = MemberOf(m.dimension_names[d], m.shape[d], options);
          if (member.ok())
            v.member_index = *member;
          else
            unknown_member = member.status();
        }
      }
      if (!unknown_member.ok()) {  // as below: the store's variables without members stay readable
        unusable_[CanonicalVariableName(n.path)] = unknown_member.Annotate("variable \"" + n.path + "\"");
        continue;
      }
      if (!has[static_cast<int>(DimRole::kLatitude)] || !has[static_cast<int>(DimRole::kLongitude)]) {
        continue;  // a coordinate or an auxiliary array
      }
      if (!has[static_cast<int>(DimRole::kTime)]) {
        // A time-independent field (WB2: land_sea_mask, geopotential_at_surface, soil_type), on this grid.
        bool same_grid = !has[static_cast<int>(DimRole::kLevel)] && unknown.empty();
        for (size_t d = 0; d < m.shape.size() && same_grid; ++d) {
          if (v.roles[d] == DimRole::kLatitude) same_grid = m.shape[d] == static_cast<int64_t>(lat.size());
          if (v.roles[d] == DimRole::kLongitude) same_grid = m.shape[d] == static_cast<int64_t>(lon.size());
        }
        if (same_grid) {
          ASSIGN_OR_RETURN(v.array, Array::Open(store_.get(), n.path));
          v.array->RequireEveryChunk(true);
          v.packing = CfPackingOf(v.array->metadata());
          const std::string name = CanonicalVariableName(n.path);
          if (!statics_.count(name)) static_names_.push_back(name);
          statics_[name] = std::move(v);
        }
        continue;
      }
      // Kept aside: the store's other variables stay readable, a request for this one is told why.
      if (!unknown.empty()) {
        unusable_[CanonicalVariableName(n.path)] = UnimplementedError(
            "variable \"" + n.path + "\" has the dimension " + unknown + " (" +
            nlohmann::json(m.dimension_names).dump() + " of " + nlohmann::json(m.shape).dump() +
            "), which jigsaw-shard does not know (it reads time, level, latitude, longitude and a member dimension: "
            "number, realization, member); select along it first");
        continue;
      }
      for (size_t d = 0; d < m.shape.size(); ++d) {
        int64_t want = v.roles[d] == DimRole::kTime        ? static_cast<int64_t>(times_.size())
                       : v.roles[d] == DimRole::kLatitude  ? static_cast<int64_t>(lat.size())
                       : v.roles[d] == DimRole::kLongitude ? static_cast<int64_t>(lon.size())
                       : v.roles[d] == DimRole::kLevel     ? static_cast<int64_t>(levels.size())
                       : v.roles[d] == DimRole::kMember    ? m.shape[d]
                                                           : 1;
        if (m.shape[d] != want) {
          return InvalidArgumentError("variable \"" + n.path + "\" has " + std::to_string(m.shape[d]) + " along " +
                                      m.dimension_names[d] + ", its coordinate " + std::to_string(want));
        }
      }
      VariableInfo info{CanonicalVariableName(n.path), {}};
      if (has[static_cast<int>(DimRole::kLevel)]) info.levels = levels;
      if (auto u = m.attributes.find("units"); u != m.attributes.end() && u->is_string()) info.units = *u;
      ASSIGN_OR_RETURN(v.array, Array::Open(store_.get(), n.path));
      v.array->RequireEveryChunk(true);
      v.packing = CfPackingOf(v.array->metadata());
      variables_.push_back(info);
      vars_[info.name] = std::move(v);
    }
    if (variables_.empty() && !unusable_.empty()) return unusable_.begin()->second;
    if (variables_.empty()) return InvalidArgumentError("no variable with time, latitude and longitude dimensions");
    return OkStatus();
  }

  // The index along member dimension `dim` (of length n): its coordinate array if the store has one. Read
  // once per dimension, not once per variable that has it.
  Result<int64_t> MemberOf(const std::string& dim, int64_t n, const SourceOptions& options) {
    auto known = member_of_.find(dim);
    if (known == member_of_.end()) known = member_of_.emplace(dim, FindMember(dim, n, options)).first;
    return known->second;
  }
  Result<int64_t> FindMember(const std::string& dim, int64_t n, const SourceOptions& options) {
    std::vector<double> values(n);
    for (int64_t i = 0; i < n; ++i) values[i] = static_cast<double>(i);
    if (auto coord = Array::Open(store_.get(), dim); coord.ok() && (*coord)->metadata().shape.size() == 1) {
      (*coord)->RequireEveryChunk(true);
      ASSIGN_OR_RETURN(values, ReadDoubles(**coord));
    }
    if (values.size() > 1 && members_.empty())
      for (double v : values) members_.push_back(static_cast<int64_t>(v));
    return MemberIndex("", dim, values, options);
  }

  Status Unusable(const std::string& name) const override {
    auto it = unusable_.find(name);
    return it == unusable_.end() ? OkStatus() : it->second;
  }

  std::unique_ptr<KvStore> store_;
  std::map<std::string, Status> unusable_;            // canonical name -> why it cannot be read
  std::vector<int64_t> members_;                      // along the (first) member dimension, when longer than 1
  std::map<std::string, Result<int64_t>> member_of_;  // member dimension -> the index read along it
  SourceGrid grid_;
  PlaneOrientation orientation_;
  std::vector<int64_t> times_;
  std::vector<VariableInfo> variables_;
  std::map<std::string, ZarrVariable, std::less<>> vars_;
  std::map<std::string, ZarrVariable, std::less<>> statics_;
};

}  // namespace

Result<std::unique_ptr<Source>> OpenZarrSource(std::string_view url, const SourceOptions& options) {
  return ZarrSource::Open(url, options);
}

}  // namespace jigsaw
