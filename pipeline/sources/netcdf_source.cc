// NetCDF files as the Copernicus CDS delivers them: the new layout (valid_time, pressure_level, float32,
// number/expver coordinates) and the legacy one (time, level, int16 packed with per-file scale_factor /
// add_offset). libnetcdf is not thread-safe: every call into it holds one process-wide lock.
#include <glob.h>
#include <sys/stat.h>
#include <netcdf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <cmath>
#include <map>
#include <mutex>

#include <tbb/parallel_for.h>

#include "pipeline/sources/netcdf_classic_size.h"
#include "pipeline/sources/source.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/cf.h"

namespace jigsaw {
namespace {

std::mutex& NetcdfLock() {
  static std::mutex mu;
  return mu;
}

Status NcStatus(int rc, const std::string& what) {
  if (rc == NC_NOERR) return OkStatus();
  return (rc == NC_ENOTVAR || rc == ENOENT ? NotFoundError("") : IoError("")).Annotate(what + ": " + nc_strerror(rc));
}

struct NcVariable {
  int varid = -1;
  std::vector<DimRole> roles;
  std::vector<int64_t> dims;
  double scale = 1.0, offset = 0.0;
  std::vector<double> missing;
  int64_t member_index = 0;  // along its member dimension, if it has one
};

class NetcdfSource final : public Source {
 public:
  // `local` is the file libnetcdf opens; `path` names the source in messages (a URL for remote files).
  static Result<std::unique_ptr<Source>> Open(std::string_view path, std::string_view local,
                                              const SourceOptions& options) {
    auto src = std::unique_ptr<NetcdfSource>(new NetcdfSource());
    src->path_ = path;
    std::lock_guard lock(NetcdfLock());
    RETURN_IF_ERROR(CheckClassicNetcdfSize(std::string(local), src->path_));
    RETURN_IF_ERROR(NcStatus(nc_open(std::string(local).c_str(), NC_NOWRITE, &src->ncid_), "open " + src->path_));
    RETURN_IF_ERROR(src->Load(options).Annotate(src->path_));
    return std::unique_ptr<Source>(std::move(src));
  }
  ~NetcdfSource() override {
    if (ncid_ >= 0) {
      std::lock_guard lock(NetcdfLock());
      nc_close(ncid_);
    }
  }

  std::string url() const override { return path_; }
  std::vector<int64_t> members() const override { return members_; }
  const SourceGrid& grid() const override { return grid_; }
  const std::vector<VariableInfo>& variables() const override { return variables_; }
  const std::vector<int64_t>& times() const override { return times_; }

  Status Read(const std::string& name, int64_t t, std::span<const int64_t> levels, float* out) const override {
    auto it = vars_.find(name);
    if (it == vars_.end()) return NotFoundError(path_ + ": no variable \"" + name + "\"");
    return ReadBlock(it->second, t, levels, out).Annotate(path_ + ": read " + name + " at " + FormatIsoTime(times_[t]));
  }

 protected:
  Status ReadStaticVariable(const std::string& name, float* out) const override {
    auto it = statics_.find(name);
    if (it == statics_.end()) return NotFoundError(path_ + ": no static variable \"" + name + "\"");
    return ReadBlock(it->second, 0, {}, out).Annotate(path_ + ": read static " + name);
  }

 private:
  Status ReadBlock(const NcVariable& v, int64_t t, std::span<const int64_t> levels, float* out) const {
    const SourceBlock block = BlockFor(v.roles, v.dims, t, levels, v.member_index);
    const int64_t n = block.elements;
    const std::vector<size_t> start(block.start.begin(), block.start.end()),
        count(block.count.begin(), block.count.end());
    std::vector<double> raw(n);
    {
      std::lock_guard lock(NetcdfLock());
      RETURN_IF_ERROR(NcStatus(nc_get_vara_double(ncid_, v.varid, start.data(), count.data(), raw.data()), "read"));
    }
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i) {
      bool miss = false;
      for (double m : v.missing) miss |= raw[i] == m;
      values[i] = miss ? NAN : static_cast<float>(raw[i] * v.scale + v.offset);
    }
    orientation_.ApplyLevels(values.data(), block, levels, grid_.latitude.size(), out);
    return OkStatus();
  }

  Result<std::string> TextAttribute(int varid, const char* name) {
    size_t len = 0;
    if (nc_inq_attlen(ncid_, varid, name, &len) != NC_NOERR) return NotFoundError(name);
    std::string s(len, '\0');
    RETURN_IF_ERROR(NcStatus(nc_get_att_text(ncid_, varid, name, s.data()), name));
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }
  std::optional<double> NumberAttribute(int varid, const char* name) {
    double v;
    size_t len = 0;
    if (nc_inq_attlen(ncid_, varid, name, &len) != NC_NOERR || len != 1) return std::nullopt;
    if (nc_get_att_double(ncid_, varid, name, &v) != NC_NOERR) return std::nullopt;
    return v;
  }
  Result<std::vector<double>> Coordinate(const std::string& name) {
    int varid;
    RETURN_IF_ERROR(NcStatus(nc_inq_varid(ncid_, name.c_str(), &varid), "coordinate " + name));
    int ndims;
    int dimids[NC_MAX_VAR_DIMS];
    RETURN_IF_ERROR(NcStatus(nc_inq_var(ncid_, varid, nullptr, nullptr, &ndims, dimids, nullptr), name));
    if (ndims != 1) return InvalidArgumentError("coordinate " + name + " is not one-dimensional");
    size_t len;
    RETURN_IF_ERROR(NcStatus(nc_inq_dimlen(ncid_, dimids[0], &len), name));
    std::vector<double> v(len);
    RETURN_IF_ERROR(NcStatus(nc_get_var_double(ncid_, varid, v.data()), "read " + name));
    return v;
  }

  void ReadPacking(int varid, NcVariable* v) {
    if (auto s = NumberAttribute(varid, "scale_factor")) v->scale = *s;
    if (auto o = NumberAttribute(varid, "add_offset")) v->offset = *o;
    for (const char* a : {"_FillValue", "missing_value"})
      if (auto m = NumberAttribute(varid, a)) v->missing.push_back(*m);
  }

  Status Load(const SourceOptions& options) {
    int ndims_total, nvars;
    RETURN_IF_ERROR(NcStatus(nc_inq(ncid_, &ndims_total, &nvars, nullptr, nullptr), "inquire"));
    std::map<DimRole, std::string> coord;
    std::vector<std::string> dim_names(ndims_total);
    std::vector<size_t> dim_lens(ndims_total);
    for (int d = 0; d < ndims_total; ++d) {
      char name[NC_MAX_NAME + 1];
      RETURN_IF_ERROR(NcStatus(nc_inq_dim(ncid_, d, name, &dim_lens[d]), "dimension"));
      dim_names[d] = name;
      DimRole r = RoleOfDimension(name);
      if (r != DimRole::kOther) coord[r] = name;
    }
    for (DimRole r : {DimRole::kTime, DimRole::kLatitude, DimRole::kLongitude})
      if (!coord.count(r)) return InvalidArgumentError("no time/valid_time, latitude or longitude dimension");
    int tvar;
    RETURN_IF_ERROR(NcStatus(nc_inq_varid(ncid_, coord[DimRole::kTime].c_str(), &tvar), "time coordinate"));
    auto units = TextAttribute(tvar, "units");
    if (!units.ok()) return InvalidArgumentError("time coordinate \"" + coord[DimRole::kTime] + "\" has no units");
    auto calendar = TextAttribute(tvar, "calendar");
    ASSIGN_OR_RETURN(CfTimeUnits cf, ParseCfTimeUnits(*units, calendar.ok() ? *calendar : ""));
    ASSIGN_OR_RETURN(auto tv, Coordinate(coord[DimRole::kTime]));
    times_ = DecodeCfTimes(tv, cf);
    for (size_t i = 1; i < times_.size(); ++i)
      if (times_[i] <= times_[i - 1])
        return InvalidArgumentError("times are not strictly increasing at " + FormatIsoTime(times_[i]));
    ASSIGN_OR_RETURN(auto lat, Coordinate(coord[DimRole::kLatitude]));
    ASSIGN_OR_RETURN(auto lon, Coordinate(coord[DimRole::kLongitude]));
    ASSIGN_OR_RETURN(orientation_, PlaneOrientation::From(lat, lon, &grid_));
    std::vector<double> levels;
    if (coord.count(DimRole::kLevel)) {
      ASSIGN_OR_RETURN(levels, Coordinate(coord[DimRole::kLevel]));
    }
    // The member: along a member dimension, or named by a scalar coordinate (CDS files carry `number`).
    std::optional<int64_t> member_index;
    if (coord.count(DimRole::kMember)) {
      const std::string& dim = coord[DimRole::kMember];
      auto values = Coordinate(dim);
      if (!values.ok()) {
        int dimid;
        size_t len = 0;
        RETURN_IF_ERROR(NcStatus(nc_inq_dimid(ncid_, dim.c_str(), &dimid), dim));
        RETURN_IF_ERROR(NcStatus(nc_inq_dimlen(ncid_, dimid, &len), dim));
        values = std::vector<double>(len);
        for (size_t i = 0; i < len; ++i) (*values)[i] = static_cast<double>(i);
      }
      if (values->size() > 1)
        for (double v : *values) members_.push_back(static_cast<int64_t>(v));
      ASSIGN_OR_RETURN(member_index, MemberIndex("", dim, *values, options));
    } else if (options.member) {
      int varid, ndims;
      double number;
      if (nc_inq_varid(ncid_, "number", &varid) == NC_NOERR && nc_inq_varndims(ncid_, varid, &ndims) == NC_NOERR &&
          ndims == 0 && nc_get_var_double(ncid_, varid, &number) == NC_NOERR &&
          number != static_cast<double>(*options.member)) {
        return InvalidArgumentError("--member " + std::to_string(*options.member) + ", but the file holds member " +
                                    FormatNumber(number) + " only (its scalar \"number\")");
      }
    }
    for (int varid = 0; varid < nvars; ++varid) {
      char name[NC_MAX_NAME + 1];
      int ndims;
      int dimids[NC_MAX_VAR_DIMS];
      nc_type type;
      RETURN_IF_ERROR(NcStatus(nc_inq_var(ncid_, varid, name, &type, &ndims, dimids, nullptr), "variable"));
      if (type == NC_CHAR || type == NC_STRING) continue;
      NcVariable v;
      v.varid = varid;
      bool has[6] = {};
      std::string unknown;  // a dimension jigsaw does not know, longer than 1
      for (int d = 0; d < ndims; ++d) {
        DimRole r = RoleOfDimension(dim_names[dimids[d]]);
        v.roles.push_back(r);
        v.dims.push_back(static_cast<int64_t>(dim_lens[dimids[d]]));
        has[static_cast<int>(r)] = true;
        if (r == DimRole::kOther && dim_lens[dimids[d]] != 1)
          unknown = "\"" + dim_names[dimids[d]] + "\" (" + std::to_string(dim_lens[dimids[d]]) + ")";
        if (r == DimRole::kMember) v.member_index = member_index.value_or(0);
      }
      if (!has[static_cast<int>(DimRole::kLatitude)] || !has[static_cast<int>(DimRole::kLongitude)]) continue;
      if (!has[static_cast<int>(DimRole::kTime)]) {
        // A time-independent field on this grid (a land-sea mask or orography without time).
        if (has[static_cast<int>(DimRole::kLevel)] || !unknown.empty()) continue;
        ReadPacking(varid, &v);
        const std::string static_name = SingleLevelVariableName(CanonicalVariableName(name));
        if (!statics_.count(static_name)) static_names_.push_back(static_name);
        statics_[static_name] = std::move(v);
        continue;
      }
      if (!unknown.empty()) {
        return UnimplementedError(std::string("variable \"") + name + "\" has the dimension " + unknown +
                                  ", which jigsaw-shard does not know (it reads time, level, latitude, longitude and "
                                  "a member dimension: number, realization, member); select along it first");
      }
      ReadPacking(varid, &v);
      VariableInfo info{CanonicalVariableName(name), {}};
      if (auto units = TextAttribute(varid, "units"); units.ok()) info.units = *units;
      if (has[static_cast<int>(DimRole::kLevel)])
        info.levels = levels;
      else  // CDS single-level files name the surface geopotential (orography) z, like the pressure-level one
        info.name = SingleLevelVariableName(info.name);
      variables_.push_back(info);
      vars_[info.name] = std::move(v);
    }
    if (variables_.empty()) return InvalidArgumentError("no variable with time, latitude and longitude dimensions");
    return OkStatus();
  }

  std::string path_;
  int ncid_ = -1;
  SourceGrid grid_;
  PlaneOrientation orientation_;
  std::vector<int64_t> times_;
  std::vector<VariableInfo> variables_;
  std::map<std::string, NcVariable, std::less<>> vars_;
  std::map<std::string, NcVariable, std::less<>> statics_;
  std::vector<int64_t> members_;  // along the member dimension, when longer than 1
};

}  // namespace

bool IsNetcdfPath(std::string_view p) {
  return p.ends_with(".nc") || p.ends_with(".nc4") || p.ends_with(".netcdf") || p.ends_with(".cdf");
}

bool IsGribPath(std::string_view p) {
  return p.ends_with(".grib") || p.ends_with(".grb") || p.ends_with(".grib1") || p.ends_with(".grib2") ||
         p.ends_with(".grb2");
}

Result<std::string> FetchSourceObject(std::string_view url) {
  size_t slash = url.rfind('/');
  if (slash == std::string_view::npos || slash + 1 == url.size() || url.substr(0, slash).ends_with(":/")) {
    return InvalidArgumentError("cannot split " + std::string(url) + " into a store and a file name");
  }
  ASSIGN_OR_RETURN(auto store, OpenKvStore(url.substr(0, slash)));
  ASSIGN_OR_RETURN(ReadResult r, store->Read(url.substr(slash + 1)));
  if (r.missing) return NotFoundError(std::string(url) + " does not exist");
  return std::move(r.value);
}

// libnetcdf reads local files only: a NetCDF object in an object store is fetched once into a temporary
// file, unlinked as soon as it is open (so nothing is left behind, even after a crash).
Result<std::unique_ptr<Source>> OpenRemoteNetcdf(std::string_view url, const SourceOptions& options) {
  ASSIGN_OR_RETURN(std::string bytes, FetchSourceObject(url));
  const char* tmpdir = std::getenv("TMPDIR");
  std::string tmp = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/jigsaw-netcdf-XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return ErrnoToStatus(errno, "create a temporary file for " + std::string(url));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status st = ErrnoToStatus(errno, "write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  auto source = NetcdfSource::Open(url, tmp, options);
  ::unlink(tmp.c_str());
  return source;
}

Result<std::unique_ptr<Source>> OpenNetcdfSource(std::string_view path, const SourceOptions& options) {
  if (path.find("://") != std::string_view::npos) return OpenRemoteNetcdf(path, options);
  return NetcdfSource::Open(path, path, options);
}

Result<std::vector<std::unique_ptr<Source>>> OpenSources(std::string_view spec, const SourceOptions& options) {
  std::vector<std::string> paths;
  if (spec.find_first_of("*?[") != std::string_view::npos && spec.find("://") != std::string_view::npos) {
    return InvalidArgumentError("globs work on local files only; list each object of " + std::string(spec));
  }
  if (spec.find_first_of("*?[") != std::string_view::npos) {
    glob_t g{};
    int rc = glob(std::string(spec).c_str(), 0, nullptr, &g);
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) paths.push_back(g.gl_pathv[i]);
    globfree(&g);
    if (paths.empty()) return NotFoundError("no file matches " + std::string(spec));
  } else {
    paths.push_back(std::string(spec));
  }
  // A NetCDF or GRIB source is a regular file: a FIFO or a link to a device (/dev/zero) would be read for ever.
  for (const std::string& p : paths) {
    if (p.find("://") != std::string::npos || !(IsNetcdfPath(p) || IsGribPath(p))) continue;
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      return InvalidArgumentError(p + " is not a regular file (a FIFO, a device or a directory): not a source");
  }
  // Files are opened (a GRIB file indexed) in parallel; the first error in path order is the one reported.
  std::vector<std::unique_ptr<Source>> opened(paths.size());
  std::vector<Status> status(paths.size());
  tbb::parallel_for(size_t{0}, paths.size(), [&](size_t i) {
    const std::string& p = paths[i];
    auto r = IsNetcdfPath(p) ? OpenNetcdfSource(p, options)
             : IsGribPath(p) ? OpenGribSource(p, options)
                             : OpenZarrSource(p, options);
    if (r.ok())
      opened[i] = std::move(*r);
    else
      status[i] = r.status();
  });
  for (const Status& s : status) RETURN_IF_ERROR(s);
  return opened;
}

}  // namespace jigsaw
