#include "pipeline/sources/grib_index.h"

#include <eccodes.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "pipeline/sources/source.h"
#include "storage/codec/crc32c.h"
#include "storage/zarr/cf.h"

namespace jigsaw {
namespace {

constexpr int kIndexVersion = 1;

struct HandleDeleter {
  void operator()(codes_handle* h) const { codes_handle_delete(h); }
};
using Handle = std::unique_ptr<codes_handle, HandleDeleter>;

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

std::string GetString(codes_handle* h, const char* key) {
  char buf[256];
  size_t len = sizeof buf;
  if (codes_get_string(h, key, buf, &len) != CODES_SUCCESS) return "";
  return buf;
}

std::optional<long> GetLong(codes_handle* h, const char* key) {
  long v;
  if (codes_get_long(h, key, &v) != CODES_SUCCESS) return std::nullopt;
  return v;
}

std::optional<double> GetDouble(codes_handle* h, const char* key) {
  double v;
  if (codes_get_double(h, key, &v) != CODES_SUCCESS) return std::nullopt;
  return v;
}

// The validity time of a message (validityDate YYYYMMDD, validityTime hhmm) in seconds since 1970.
Result<int64_t> ValidityTime(codes_handle* h) {
  auto date = GetLong(h, "validityDate"), time = GetLong(h, "validityTime");
  if (!date || !time) return InvalidArgumentError("no validityDate/validityTime");
  char text[96];
  std::snprintf(text, sizeof text, "%04ld-%02ld-%02ldT%02ld:%02ld", *date / 10000, *date / 100 % 100, *date % 100,
                *time / 100, *time % 100);
  return ParseIsoTime(text);
}

Result<GribGrid> GridOf(codes_handle* h) {
  GribGrid g;
  g.type = GetString(h, "gridType");
  if (g.type != "regular_ll") return g;  // refused by the caller, which names the message
  auto ni = GetLong(h, "Ni"), nj = GetLong(h, "Nj");
  auto la0 = GetDouble(h, "latitudeOfFirstGridPointInDegrees"), la1 = GetDouble(h, "latitudeOfLastGridPointInDegrees");
  auto lo0 = GetDouble(h, "longitudeOfFirstGridPointInDegrees"),
       lo1 = GetDouble(h, "longitudeOfLastGridPointInDegrees");
  auto ineg = GetLong(h, "iScansNegatively"), jpos = GetLong(h, "jScansPositively"),
       jcon = GetLong(h, "jPointsAreConsecutive");
  if (!ni || !nj || !la0 || !la1 || !lo0 || !lo1 || !ineg || !jpos || !jcon)
    return InvalidArgumentError("a regular_ll grid without Ni/Nj, first/last grid points or scanning mode");
  g.ni = *ni;
  g.nj = *nj;
  g.lat_first = *la0;
  g.lat_last = *la1;
  g.lon_first = *lo0;
  g.lon_last = *lo1;
  g.i_negative = *ineg != 0;
  g.j_positive = *jpos != 0;
  g.j_consecutive = *jcon != 0;
  return g;
}

// One pass over a stream of GRIB messages.
Result<GribIndex> Scan(std::string_view name, FILE* f) {
  GribIndex index;
  index.path = name;
  for (int64_t number = 1;; ++number) {
    int err = 0;
    std::lock_guard lock(EccodesLock());  // declared first: released after the handle is deleted
    Handle h(codes_handle_new_from_file(nullptr, f, PRODUCT_GRIB, &err));
    if (!h) {
      if (err == CODES_SUCCESS) break;  // end of file
      return DataLossError(std::string(name) + ": message " + std::to_string(number) +
                           " cannot be read: " + codes_get_error_message(err));
    }
    GribMessage m;
    m.number = number;
    auto offset = GetLong(h.get(), "offset"), length = GetLong(h.get(), "totalLength");
    if (!offset || !length)
      return DataLossError(std::string(name) + ": message " + std::to_string(number) + " has no length");
    m.offset = *offset;
    m.length = *length;
    m.short_name = GetString(h.get(), "shortName");
    m.level_type = GetString(h.get(), "typeOfLevel");
    m.level = GetDouble(h.get(), "level").value_or(0);
    if (auto member = GetLong(h.get(), "number")) m.member = *member;
    auto time = ValidityTime(h.get());
    if (!time.ok())
      return InvalidArgumentError(std::string(name) + ": message " + std::to_string(number) + " (" + m.short_name +
                                  "): " + time.status().message());
    m.time = *time;
    auto grid = GridOf(h.get());
    if (!grid.ok())
      return InvalidArgumentError(std::string(name) + ": " + m.Describe() + ": " + grid.status().message());
    if (grid->type != "regular_ll") {
      return UnimplementedError(std::string(name) + ": " + m.Describe() + " is on a " + grid->type +
                                " grid: jigsaw-shard reads regular latitude/longitude grids (regular_ll) only; "
                                "interpolate first (e.g. MIR, cdo remapbil)");
    }
    if (index.messages.empty()) {
      index.grid = *grid;
    } else if (!(*grid == index.grid)) {
      return InvalidArgumentError(std::string(name) + ": " + m.Describe() + " is on the grid " + grid->Describe() +
                                  ", message 1 (" + index.messages[0].short_name + ") on " + index.grid.Describe());
    }
    index.messages.push_back(std::move(m));
  }
  if (index.messages.empty()) return InvalidArgumentError(std::string(name) + ": no GRIB message in the file");
  return index;
}

}  // namespace

std::mutex& EccodesLock() {
  static std::mutex mu;
  return mu;
}

std::string GribGrid::Describe() const {
  return type + " " + std::to_string(nj) + "x" + std::to_string(ni) + " (latitude " + FormatNumber(lat_first) + " to " +
         FormatNumber(lat_last) + ", longitude " + FormatNumber(lon_first) + " to " + FormatNumber(lon_last) + ")";
}

std::string GribMessage::Describe() const {
  return "message " + std::to_string(number) + " (" + short_name + " on " + level_type + " " + FormatNumber(level) +
         (member >= 0 ? ", member " + std::to_string(member) : "") + " at " + FormatIsoTime(time) + ")";
}

Result<GribIndex> ScanGrib(std::string_view name, std::string_view bytes) {
  if (bytes.empty()) return InvalidArgumentError(std::string(name) + ": empty file");
  std::unique_ptr<FILE, FileCloser> f(fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb"));
  if (!f) return ErrnoToStatus(errno, "open " + std::string(name) + " in memory");
  ASSIGN_OR_RETURN(GribIndex index, Scan(name, f.get()));
  index.size = static_cast<int64_t>(bytes.size());
  return index;
}

Result<GribIndex> ScanGribFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat " + path);
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return ErrnoToStatus(errno, "open " + path);
  ASSIGN_OR_RETURN(GribIndex index, Scan(path, f.get()));
  index.size = st.st_size;
  index.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return index;
}

nlohmann::json EncodeGribIndex(const GribIndex& x) {
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : x.messages)
    messages.push_back({m.number, m.offset, m.length, m.short_name, m.level_type, m.level, m.time, m.member});
  const GribGrid& g = x.grid;
  return {{"jigsaw_grib_index", kIndexVersion},
          {"path", x.path},
          {"size", x.size},
          {"mtime_ns", x.mtime_ns},
          {"grid",
           {g.type, g.ni, g.nj, g.lat_first, g.lat_last, g.lon_first, g.lon_last, g.i_negative, g.j_positive,
            g.j_consecutive}},
          {"messages", messages}};
}

Result<GribIndex> DecodeGribIndex(const nlohmann::json& j) {
  try {
    if (j.at("jigsaw_grib_index").get<int>() != kIndexVersion) return InvalidArgumentError("another index version");
    GribIndex x;
    x.path = j.at("path").get<std::string>();
    x.size = j.at("size").get<int64_t>();
    x.mtime_ns = j.at("mtime_ns").get<int64_t>();
    const auto& g = j.at("grid");
    x.grid = {g.at(0).get<std::string>(), g.at(1).get<int64_t>(), g.at(2).get<int64_t>(), g.at(3).get<double>(),
              g.at(4).get<double>(),      g.at(5).get<double>(),  g.at(6).get<double>(),  g.at(7).get<bool>(),
              g.at(8).get<bool>(),        g.at(9).get<bool>()};
    for (const auto& m : j.at("messages")) {
      x.messages.push_back({m.at(0).get<int64_t>(), m.at(1).get<int64_t>(), m.at(2).get<int64_t>(),
                            m.at(3).get<std::string>(), m.at(4).get<std::string>(), m.at(5).get<double>(),
                            m.at(6).get<int64_t>(), m.at(7).get<int64_t>()});
    }
    if (x.messages.empty()) return InvalidArgumentError("an index without messages");
    return x;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("malformed GRIB index: ") + e.what());
  }
}

Result<double> DecodeEveryMessage(const std::string& path, int64_t* bytes) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return ErrnoToStatus(errno, "open " + path);
  std::lock_guard lock(EccodesLock());
  std::vector<double> values;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t number = 1;; ++number) {
    int err = 0;
    Handle h(codes_handle_new_from_file(nullptr, f.get(), PRODUCT_GRIB, &err));
    if (!h && err == CODES_SUCCESS) break;
    size_t n = 0;
    if (h) err = codes_get_size(h.get(), "values", &n);
    if (err == CODES_SUCCESS) {
      values.resize(n);
      err = codes_get_double_array(h.get(), "values", values.data(), &n);
    }
    if (err != CODES_SUCCESS)
      return DataLossError(path + ": message " + std::to_string(number) + ": " + codes_get_error_message(err));
    *bytes += static_cast<int64_t>(n) * 4;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Status CheckIndexedMessage(void* handle, const GribMessage& m) {
  codes_handle* h = static_cast<codes_handle*>(handle);
  GribMessage got;
  got.short_name = GetString(h, "shortName");
  got.level_type = GetString(h, "typeOfLevel");
  got.level = GetDouble(h, "level").value_or(0);
  if (auto member = GetLong(h, "number")) got.member = *member;
  auto time = ValidityTime(h);
  got.time = time.ok() ? *time : -1;
  if (got.short_name != m.short_name || got.level_type != m.level_type || got.level != m.level ||
      got.member != m.member || got.time != m.time) {
    got.number = m.number;
    return DataLossError("the index says " + m.Describe() + ", the file holds " + got.Describe() + " there");
  }
  return OkStatus();
}

std::string GribIndexCacheDir() {
  if (const char* d = std::getenv("JIGSAW_CACHE_DIR"); d && *d) return std::string(d) + "/grib-index";
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/jigsaw/grib-index";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/jigsaw/grib-index";
  return "";
}

Result<GribIndex> LoadGribIndex(const std::string& path, const std::string& cache_dir, bool* from_cache) {
  if (from_cache) *from_cache = false;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat " + path);
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  std::string entry;
  if (!cache_dir.empty() && !ec) {
    char key[32];
    std::snprintf(key, sizeof key, "%08x%08x", Crc32c(absolute), Crc32c(absolute, 0x9E3779B9u));
    entry = cache_dir + "/" + key + "-" + std::filesystem::path(path).filename().string() + ".json";
    std::ifstream in(entry);
    if (in) {
      auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (!j.is_discarded()) {
        auto cached = DecodeGribIndex(j);
        // A stale entry (the file changed, or another file had this key) is rebuilt, as is a damaged one.
        bool inside = cached.ok();
        int64_t end = 0;  // messages in file order, each inside the file, none overlapping the last
        for (size_t k = 0; inside && k < cached->messages.size(); ++k) {
          const GribMessage& m = cached->messages[k];
          inside = m.offset >= end && m.length > 0 && m.length <= st.st_size && m.offset <= st.st_size - m.length;
          end = m.offset + m.length;
        }
        if (inside && cached->path == absolute && cached->size == st.st_size && cached->mtime_ns == mtime_ns) {
          if (from_cache) *from_cache = true;
          cached->path = path;
          cached->cache_entry = entry;
          return cached;
        }
      }
    }
  }
  ASSIGN_OR_RETURN(GribIndex index, ScanGribFile(path));
  if (!entry.empty()) {
    GribIndex stored = index;
    stored.path = absolute;
    std::filesystem::create_directories(cache_dir, ec);
    const std::string tmp = entry + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream out(tmp);
      out << EncodeGribIndex(stored).dump();
      if (!out.flush()) ec = std::make_error_code(std::errc::io_error);
    }
    if (ec || std::rename(tmp.c_str(), entry.c_str()) != 0) ::unlink(tmp.c_str());
  }
  return index;
}

}  // namespace jigsaw
