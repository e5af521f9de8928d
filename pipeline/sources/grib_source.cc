// GRIB files (editions 1 and 2) as ECMWF and the Copernicus CDS deliver them: one message per field
// (variable, level, time, member), read through ecCodes from the file index (grib_index.h) with no
// conversion step.
#include <eccodes.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <cmath>
#include <map>
#include <set>

#include "pipeline/sources/grib_index.h"
#include "pipeline/sources/source.h"
#include "storage/zarr/cf.h"

namespace jigsaw {
namespace {

struct GribVar {
  std::string short_name;
  std::vector<double> levels;  // hPa, ascending; empty for one level
  std::vector<int64_t> at;     // [level][time] -> index into messages, -1 where the file has none
};

class GribSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Open(std::string_view path, const SourceOptions& options) {
    auto src = std::unique_ptr<GribSource>(new GribSource());
    src->path_ = path;
    if (path.find("://") != std::string_view::npos) {
      ASSIGN_OR_RETURN(src->bytes_, FetchSourceObject(path));
      ASSIGN_OR_RETURN(src->index_, ScanGrib(path, src->bytes_));
    } else {
      ASSIGN_OR_RETURN(src->index_, LoadGribIndex(src->path_, GribIndexCacheDir()));
      src->fd_ = ::open(src->path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (src->fd_ < 0) return ErrnoToStatus(errno, "open " + src->path_);
    }
    RETURN_IF_ERROR(src->Load(options));
    return std::unique_ptr<Source>(std::move(src));
  }
  ~GribSource() override {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string url() const override { return path_; }
  std::vector<int64_t> members() const override { return members_; }
  const SourceGrid& grid() const override { return grid_; }
  const std::vector<VariableInfo>& variables() const override { return variables_; }
  const std::vector<int64_t>& times() const override { return times_; }
  Status Unusable(const std::string& name) const override {
    auto it = unusable_.find(name);
    return it == unusable_.end() ? OkStatus() : it->second;
  }

  std::string Lacks(const std::string& name, int64_t t, std::span<const int64_t> levels) const override {
    auto it = vars_.find(name);
    if (it == vars_.end()) return "";
    const GribVar& v = it->second;
    const int64_t one[] = {0};
    for (int64_t l : levels.empty() ? std::span<const int64_t>(one) : levels) {
      if (v.at[l * times_.size() + t] < 0) {
        return path_ + ": no message for " + v.short_name + " (" + name + ")" +
               (v.levels.empty() ? "" : " at " + FormatNumber(v.levels[l]) + " hPa") + " at " +
               FormatIsoTime(times_[t]);
      }
    }
    return "";
  }

  Status Read(const std::string& name, int64_t t, std::span<const int64_t> levels, float* out) const override {
    auto it = vars_.find(name);
    if (it == vars_.end()) return NotFoundError(path_ + ": no variable \"" + name + "\"");
    if (std::string lacks = Lacks(name, t, levels); !lacks.empty()) return NotFoundError(lacks);
    const GribVar& v = it->second;
    const int64_t one[] = {0};
    const int64_t plane = index_.grid.ni * index_.grid.nj;
    std::string bytes;
    std::vector<double> values;
    std::vector<float> floats(plane);
    int64_t li = 0;
    for (int64_t l : levels.empty() ? std::span<const int64_t>(one) : levels) {
      const GribMessage& m = index_.messages[v.at[l * times_.size() + t]];
      RETURN_IF_ERROR(Decode(m, &bytes, &values));
      for (int64_t i = 0; i < plane; ++i) floats[i] = static_cast<float>(values[i]);
      const GribGrid& g = index_.grid;
      orientation_.Apply(floats.data(), g.j_consecutive ? 1 : g.ni, g.j_consecutive ? g.nj : 1, g.nj,
                         out + li++ * plane);
    }
    return OkStatus();
  }

 private:
  // The file no longer matches its index (rewritten with the same size and time): the cached index goes,
  // so that the next run scans the file again; this one stops rather than read another field.
  Status Stale(const std::string& what) const {
    std::string removed;
    if (!index_.cache_entry.empty() && std::filesystem::remove(index_.cache_entry)) {
      removed = "; its cached index " + index_.cache_entry + " was removed: run again to index it anew";
    }
    return DataLossError(what + " (the file changed since it was indexed" + removed + ")");
  }

  // The values of message `m` in scanning order, NaN where its bitmap says missing.
  Status Decode(const GribMessage& m, std::string* bytes, std::vector<double>* values) const {
    auto what = [&] { return path_ + ": " + m.Describe(); };  // for errors only: not on every message
    const char* data;
    if (fd_ >= 0) {
      bytes->resize(m.length);
      int64_t done = 0;
      while (done < m.length) {
        ssize_t n = ::pread(fd_, bytes->data() + done, m.length - done, m.offset + done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoToStatus(errno, "read " + what());
        if (n == 0)
          return DataLossError(what() + ": the file ends before the message (it changed since it was indexed)");
        done += n;
      }
      data = bytes->data();
    } else {
      if (m.offset + m.length > static_cast<int64_t>(bytes_.size())) return DataLossError(what() + ": past the end");
      data = bytes_.data() + m.offset;
    }
    std::lock_guard lock(EccodesLock());
    codes_handle* h = codes_handle_new_from_message(nullptr, data, m.length);
    if (!h) return Stale(what() + ": not a GRIB message");
    if (Status same = CheckIndexedMessage(h, m); !same.ok()) {
      codes_handle_delete(h);
      return Stale(path_ + ": " + same.message());
    }
    // Points the bitmap marks missing decode to `missingValue` (9999 unless the message says otherwise), a
    // number a field may hold (a geopotential of 9999 m2 s-2): they decode to a sentinel no packed value
    // can reach instead, and become NaN.
    constexpr double kMissing = -1e300;
    long bitmap = 0;
    if (codes_get_long(h, "bitmapPresent", &bitmap) == CODES_SUCCESS && bitmap)
      codes_set_double(h, "missingValue", kMissing);
    size_t n = 0;
    int err = codes_get_size(h, "values", &n);
    const int64_t want = index_.grid.ni * index_.grid.nj;
    if (err == CODES_SUCCESS && static_cast<int64_t>(n) != want) {
      codes_handle_delete(h);
      return DataLossError(what() + ": " + std::to_string(n) + " values, the grid has " + std::to_string(want));
    }
    values->resize(n);
    if (err == CODES_SUCCESS) err = codes_get_double_array(h, "values", values->data(), &n);
    codes_handle_delete(h);
    if (bitmap)
      for (double& x : *values)
        if (x == kMissing) x = NAN;
    if (err != CODES_SUCCESS) return DataLossError(what() + ": " + codes_get_error_message(err));
    return OkStatus();
  }

  Status Load(const SourceOptions& options) {
    const GribGrid& g = index_.grid;
    std::vector<double> lat(g.nj), lon(g.ni);
    double lon_last = g.lon_last;
    if (!g.i_negative && lon_last < g.lon_first) lon_last += 360;  // e.g. 180 .. 179.75 across the meridian
    if (g.i_negative && lon_last > g.lon_first) lon_last -= 360;
    for (int64_t j = 0; j < g.nj; ++j)
      lat[j] = g.lat_first + (g.lat_last - g.lat_first) * j / std::max<int64_t>(1, g.nj - 1);
    for (int64_t i = 0; i < g.ni; ++i)
      lon[i] = g.lon_first + (lon_last - g.lon_first) * i / std::max<int64_t>(1, g.ni - 1);
    auto orientation = PlaneOrientation::From(lat, lon, &grid_);
    if (!orientation.ok()) return orientation.status().Annotate(path_ + ": " + g.Describe());
    orientation_ = *orientation;

    // Members: one is kept; a file of several needs the choice.
    std::set<int64_t> members;
    for (const auto& m : index_.messages) members.insert(m.member);
    std::optional<int64_t> keep;
    if (members.size() > 1) {
      std::string list;
      for (int64_t m : members) list += (list.empty() ? "" : ", ") + std::to_string(m);
      members_.assign(members.begin(), members.end());
      if (!options.member && !options.first_member) {
        return InvalidArgumentError(path_ + ": an ensemble: the messages have the member dimension \"number\" (" +
                                    list + "): choose one with --member N, or --members all");
      }
      if (options.member && !members.count(*options.member)) {
        return InvalidArgumentError(path_ + ": no member " + std::to_string(*options.member) + " (it has " + list +
                                    ")");
      }
      keep = options.member ? *options.member : members_.front();
    } else if (options.member && *members.begin() >= 0 && *members.begin() != *options.member) {
      return InvalidArgumentError(path_ + ": --member " + std::to_string(*options.member) +
                                  ", but the file holds member " + std::to_string(*members.begin()) + " only");
    }

    // Variables, their levels and the times.
    std::map<std::string, std::set<double>> levels;
    std::set<int64_t> times;
    for (const auto& m : index_.messages) {
      if (keep && m.member != *keep) continue;
      GribVariable gv = GribVariableOf(m.short_name, m.level_type);
      if (gv.name.empty()) {
        unusable_.emplace(
            CanonicalVariableName(m.short_name),
            UnimplementedError(m.short_name + " is on " + m.level_type +
                               " levels: jigsaw-shard reads pressure levels (isobaricInhPa, isobaricInPa) and single "
                               "levels (surface, meanSea, heightAboveGround, entireAtmosphere)"));
        continue;
      }
      auto& lv = levels[gv.name];
      if (gv.pressure) lv.insert(m.level_type == "isobaricInPa" ? m.level / 100 : m.level);
      times.insert(m.time);
      if (!vars_.count(gv.name)) {
        vars_[gv.name].short_name = m.short_name;
        variables_.push_back({gv.name, {}, Era5Units(gv.name)});
      } else if (vars_[gv.name].short_name != m.short_name) {
        return InvalidArgumentError(path_ + ": " + m.Describe() + " and " + vars_[gv.name].short_name +
                                    " messages are both " + gv.name);
      }
    }
    if (variables_.empty()) {
      return InvalidArgumentError(path_ + ": no message on pressure or single levels" +
                                  (unusable_.empty() ? "" : " (" + unusable_.begin()->second.message() + ")"));
    }
    times_.assign(times.begin(), times.end());
    for (auto& info : variables_) {
      GribVar& v = vars_[info.name];
      info.levels.assign(levels[info.name].begin(), levels[info.name].end());
      v.levels = info.levels;
      unusable_.erase(info.name);
      v.at.assign(std::max<size_t>(1, v.levels.size()) * times_.size(), -1);
    }
    for (size_t i = 0; i < index_.messages.size(); ++i) {
      const GribMessage& m = index_.messages[i];
      if (keep && m.member != *keep) continue;
      GribVariable gv = GribVariableOf(m.short_name, m.level_type);
      if (gv.name.empty()) continue;
      GribVar& v = vars_[gv.name];
      int64_t li = 0;
      if (gv.pressure) {
        const double hpa = m.level_type == "isobaricInPa" ? m.level / 100 : m.level;
        li = std::lower_bound(v.levels.begin(), v.levels.end(), hpa) - v.levels.begin();
      }
      const int64_t ti = std::lower_bound(times_.begin(), times_.end(), m.time) - times_.begin();
      int64_t& slot = v.at[li * times_.size() + ti];
      if (slot >= 0) {
        return InvalidArgumentError(path_ + ": " + m.Describe() + " repeats " + index_.messages[slot].Describe());
      }
      slot = static_cast<int64_t>(i);
    }
    return OkStatus();
  }

  std::string path_;
  std::string bytes_;  // a remote file, fetched whole
  int fd_ = -1;        // a local file, read message by message
  GribIndex index_;
  SourceGrid grid_;
  PlaneOrientation orientation_;
  std::vector<int64_t> times_;
  std::vector<VariableInfo> variables_;
  std::map<std::string, GribVar, std::less<>> vars_;
  std::map<std::string, Status> unusable_;
  std::vector<int64_t> members_;  // "number" values, when there are several
};

}  // namespace

Result<std::unique_ptr<Source>> OpenGribSource(std::string_view path, const SourceOptions& options) {
  return GribSource::Open(path, options);
}

}  // namespace jigsaw
