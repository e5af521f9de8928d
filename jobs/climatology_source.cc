#include "jobs/climatology_source.h"
#include "storage/kvstore/checksum_record.h"

#include <cmath>
#include <cstring>

#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"

namespace jigsaw::train {
namespace {

// One element of a coordinate or variable: float32/64 or int32/64, widened to double.
double Element(const char* p, const DataType& t) {
  if (t.kind == 'f' && t.size == 8) {
    double d;
    std::memcpy(&d, p, 8);
    return d;
  }
  if (t.kind == 'f') {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  if (t.size == 8) {
    int64_t i;
    std::memcpy(&i, p, 8);
    return static_cast<double>(i);
  }
  int32_t i;
  std::memcpy(&i, p, 4);
  return i;
}

bool Readable(const DataType& t) { return (t.kind == 'f' || t.kind == 'i') && (t.size == 4 || t.size == 8); }

template <typename T>
Result<std::vector<T>> Coordinate(KvStore* store, const std::string& name) {
  auto a = Array::Open(store, name);
  if (!a.ok()) return NotFoundError("the climatology has no coordinate \"" + name + "\"");
  const auto& m = (*a)->metadata();
  if (m.shape.size() != 1) return InvalidArgumentError("the climatology's " + name + " is not 1-D");
  if (!Readable(m.dtype)) return UnimplementedError("the climatology's " + name + " has dtype " + m.dtype.name);
  std::vector<char> raw(m.shape[0] * m.dtype.size);
  RETURN_IF_ERROR((*a)->Read((*a)->full_box(), std::span<char>(raw.data(), raw.size())));
  std::vector<T> v(m.shape[0]);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(Element(raw.data() + i * m.dtype.size, m.dtype));
  return v;
}

int64_t IndexOf(const std::vector<int64_t>& v, int64_t x) {
  auto it = std::find(v.begin(), v.end(), x);
  return it == v.end() ? -1 : it - v.begin();
}

// jigsaw-shard climatology.
class OurClimatology final : public Climatology {
 public:
  OurClimatology(std::unique_ptr<KvStore> store, std::unique_ptr<Array> a, std::vector<int64_t> channels,
                 std::vector<int64_t> hours, int64_t plane)
      : store_(std::move(store)),
        a_(std::move(a)),
        channels_(std::move(channels)),
        hours_(std::move(hours)),
        plane_(plane) {}
  Status Read(int64_t t, std::vector<float>* planes) override {
    const int64_t h = IndexOf(hours_, SecondOfDay(t) / 3600);
    if (h < 0) return InvalidArgumentError("the climatology has no hour " + std::to_string(SecondOfDay(t) / 3600));
    const auto& m = a_->metadata();
    all_.resize(m.shape[2] * plane_);
    RETURN_IF_ERROR(a_->Read(Box{{DayOfYear(t) - 1, h, 0, 0, 0}, {1, 1, m.shape[2], m.shape[3], m.shape[4]}},
                             std::span<char>(reinterpret_cast<char*>(all_.data()), all_.size() * 4)));
    planes->resize(channels_.size() * plane_);
    for (size_t k = 0; k < channels_.size(); ++k)
      std::copy(all_.begin() + channels_[k] * plane_, all_.begin() + (channels_[k] + 1) * plane_,
                planes->begin() + k * plane_);
    return OkStatus();
  }

 private:
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<Array> a_;
  std::vector<int64_t> channels_, hours_;
  int64_t plane_;
  std::vector<float> all_;
};

// WeatherBench2's layout.
class Wb2Climatology final : public Climatology {
 public:
  struct Channel {
    std::unique_ptr<Array> var;
    int64_t level_index = -1;  // into the level dimension, or -1 without one
    int dim_hour, dim_doy, dim_level, dim_lat, dim_lon;
  };
  Wb2Climatology(std::unique_ptr<KvStore> store, std::vector<Channel> channels, std::vector<int64_t> hours,
                 std::vector<int64_t> doys, bool flip_lat, int64_t H, int64_t W)
      : store_(std::move(store)),
        channels_(std::move(channels)),
        hours_(std::move(hours)),
        doys_(std::move(doys)),
        flip_lat_(flip_lat),
        H_(H),
        W_(W) {}

  Status Read(int64_t t, std::vector<float>* planes) override {
    const int64_t h = IndexOf(hours_, SecondOfDay(t) / 3600), d = IndexOf(doys_, DayOfYear(t));
    if (h < 0 || d < 0) {
      return InvalidArgumentError("the climatology has no hour " + std::to_string(SecondOfDay(t) / 3600) + " or day " +
                                  std::to_string(DayOfYear(t)));
    }
    planes->assign(channels_.size() * H_ * W_, NAN);
    for (size_t k = 0; k < channels_.size(); ++k) {
      const Channel& c = channels_[k];
      const auto& m = c.var->metadata();
      Box box{std::vector<int64_t>(m.rank(), 0), std::vector<int64_t>(m.rank(), 1)};
      box.origin[c.dim_hour] = h;
      box.origin[c.dim_doy] = d;
      if (c.dim_level >= 0) box.origin[c.dim_level] = c.level_index;
      box.shape[c.dim_lat] = H_;
      box.shape[c.dim_lon] = W_;
      std::vector<char> raw(H_ * W_ * m.dtype.size);
      RETURN_IF_ERROR(c.var->Read(box, std::span<char>(raw.data(), raw.size())));
      // Into [lat, lon], north first as the truth is.
      const bool lat_first = c.dim_lat < c.dim_lon;
      for (int64_t y = 0; y < H_; ++y)
        for (int64_t x = 0; x < W_; ++x) {
          const int64_t src = lat_first ? y * W_ + x : x * H_ + y;
          (*planes)[(k * H_ + (flip_lat_ ? H_ - 1 - y : y)) * W_ + x] =
              static_cast<float>(Element(raw.data() + m.dtype.size * src, m.dtype));
        }
    }
    return OkStatus();
  }

 private:
  std::unique_ptr<KvStore> store_;
  std::vector<Channel> channels_;
  std::vector<int64_t> hours_, doys_;
  bool flip_lat_;
  int64_t H_, W_;
};

bool SameGrid(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > 1e-6) return false;
  return true;
}

}  // namespace

Result<std::unique_ptr<Climatology>> Climatology::Open(const std::string& url, const std::vector<std::string>& channels,
                                                       const std::vector<double>& lat, const std::vector<double>& lon) {
  ASSIGN_OR_RETURN(auto store, OpenCheckedKvStore(url));
  const int64_t H = static_cast<int64_t>(lat.size()), W = static_cast<int64_t>(lon.size());
  ASSIGN_OR_RETURN(auto hours, Coordinate<int64_t>(store.get(), "hour"));
  ASSIGN_OR_RETURN(auto clat, Coordinate<double>(store.get(), "latitude"));
  ASSIGN_OR_RETURN(auto clon, Coordinate<double>(store.get(), "longitude"));
  std::vector<double> flipped(clat.rbegin(), clat.rend());
  const bool flip = !SameGrid(clat, lat) && SameGrid(flipped, lat);
  if ((!SameGrid(clat, lat) && !flip) || !SameGrid(clon, lon)) {
    return InvalidArgumentError(url + ": the climatology's grid (" + std::to_string(clat.size()) + "x" +
                                std::to_string(clon.size()) + ") is not the truth's (" + std::to_string(H) + "x" +
                                std::to_string(W) + ")");
  }
  auto ours = Array::Open(store.get(), "climatology");
  if (ours.ok()) {
    const auto& m = (*ours)->metadata();
    const std::vector<std::string> names = m.attributes.value("channels", std::vector<std::string>());
    if (m.shape.size() != 5 || m.shape[0] != 366 || m.shape[3] != H || m.shape[4] != W || flip) {
      return InvalidArgumentError(url + ": climatology is not [366, hour, channel, " + std::to_string(H) + ", " +
                                  std::to_string(W) + "] north first");
    }
    std::vector<int64_t> idx;
    for (const auto& c : channels) {
      auto it = std::find(names.begin(), names.end(), c);
      if (it == names.end()) return InvalidArgumentError("channel " + c + " is not in the climatology " + url);
      idx.push_back(it - names.begin());
    }
    return std::unique_ptr<Climatology>(
        new OurClimatology(std::move(store), std::move(*ours), std::move(idx), std::move(hours), H * W));
  }
  // WeatherBench2's layout: a variable per quantity.
  ASSIGN_OR_RETURN(auto doys, Coordinate<int64_t>(store.get(), "dayofyear"));
  std::vector<int64_t> levels;
  if (auto lv = Coordinate<int64_t>(store.get(), "level"); lv.ok()) levels = std::move(*lv);
  std::vector<Wb2Climatology::Channel> out;
  for (const auto& name : channels) {
    Wb2Climatology::Channel c;
    std::string var = name;
    int64_t level = -1;
    auto a = Array::Open(store.get(), var);
    if (!a.ok()) {
      const size_t us = name.rfind('_');
      if (us != std::string::npos && us + 1 < name.size() &&
          name.find_first_not_of("0123456789", us + 1) == std::string::npos) {
        var = name.substr(0, us);
        level = std::stoll(name.substr(us + 1));
        a = Array::Open(store.get(), var);
      }
    }
    if (!a.ok())
      return InvalidArgumentError("channel " + name + " is not in the climatology " + url + " (no variable " + var +
                                  ")");
    c.var = std::move(*a);
    const auto& dims = c.var->metadata().dimension_names;
    auto dim = [&](const char* d) {
      auto it = std::find(dims.begin(), dims.end(), d);
      return it == dims.end() ? -1 : static_cast<int>(it - dims.begin());
    };
    c.dim_hour = dim("hour");
    c.dim_doy = dim("dayofyear");
    c.dim_level = dim("level");
    c.dim_lat = dim("latitude");
    c.dim_lon = dim("longitude");
    if (c.dim_hour < 0 || c.dim_doy < 0 || c.dim_lat < 0 || c.dim_lon < 0 || (level >= 0) != (c.dim_level >= 0) ||
        static_cast<size_t>(c.var->metadata().rank()) != 4u + (c.dim_level >= 0 ? 1 : 0)) {
      return InvalidArgumentError(url + ": variable " + var +
                                  " is not (hour, dayofyear, [level,] latitude, longitude) as channel " + name +
                                  " needs");
    }
    if (c.var->metadata().dtype.kind != 'f' ||
        (c.var->metadata().dtype.size != 4 && c.var->metadata().dtype.size != 8)) {
      return UnimplementedError(url + ": variable " + var + " is not float32 or float64");
    }
    if (level >= 0) {
      c.level_index = IndexOf(levels, level);
      if (c.level_index < 0)
        return InvalidArgumentError("the climatology " + url + " has no level " + std::to_string(level) + " for " +
                                    name);
    }
    out.push_back(std::move(c));
  }
  return std::unique_ptr<Climatology>(
      new Wb2Climatology(std::move(store), std::move(out), std::move(hours), std::move(doys), flip, H, W));
}

}  // namespace jigsaw::train
