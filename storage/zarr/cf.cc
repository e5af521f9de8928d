#include "storage/zarr/cf.h"

#include <algorithm>

#include "storage/zarr/array.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace jigsaw {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool ReadInt(std::string_view& s, int digits_min, int digits_max, int64_t* out) {
  int n = 0;
  int64_t v = 0;
  while (n < digits_max && n < static_cast<int>(s.size()) && s[n] >= '0' && s[n] <= '9') v = v * 10 + (s[n++] - '0');
  if (n < digits_min) return false;
  s.remove_prefix(n);
  *out = v;
  return true;
}

bool number_of(const json& v, double* out) {
  if (v.is_number()) {
    *out = v.get<double>();
    return true;
  }
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "NaN")
      *out = std::nan("");
    else if (s == "Infinity")
      *out = INFINITY;
    else if (s == "-Infinity")
      *out = -INFINITY;
    else
      return false;
    return true;
  }
  return false;
}

}  // namespace

Result<int64_t> ParseIsoTime(std::string_view text) {
  std::string_view s = text;
  auto bad = [&] { return InvalidArgumentError("cannot read the date \"" + std::string(text) + "\""); };
  int64_t y, mo = 1, d = 1, h = 0, mi = 0, sec = 0;
  if (!ReadInt(s, 1, 4, &y)) return bad();
  if (s.empty() || s[0] != '-') return bad();
  s.remove_prefix(1);
  if (!ReadInt(s, 1, 2, &mo) || s.empty() || s[0] != '-') return bad();
  s.remove_prefix(1);
  if (!ReadInt(s, 1, 2, &d)) return bad();
  if (!s.empty() && (s[0] == 'T' || s[0] == ' ')) {
    s.remove_prefix(1);
    if (!ReadInt(s, 1, 2, &h)) return bad();
    if (!s.empty() && s[0] == ':') {
      s.remove_prefix(1);
      if (!ReadInt(s, 1, 2, &mi)) return bad();
      if (!s.empty() && s[0] == ':') {
        s.remove_prefix(1);
        if (!ReadInt(s, 1, 2, &sec)) return bad();
        if (!s.empty() && s[0] == '.') {
          s.remove_prefix(1);
          int64_t frac;
          if (!ReadInt(s, 1, 9, &frac) || frac != 0) {
            if (frac != 0) return UnimplementedError("sub-second reference dates: \"" + std::string(text) + "\"");
            return bad();
          }
        }
      }
    }
  }
  while (!s.empty() && s[0] == ' ') s.remove_prefix(1);
  if (s == "Z" || s == "UTC" || s == "+00:00" || s == "+0000" || s == "00:00") s = {};
  if (!s.empty()) return bad();
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return bad();
  // Days in the month, so that 2020-02-30 is refused rather than read as March 1st.
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[mo - 1] + (mo == 2 && leap ? 1 : 0)) {
    return InvalidArgumentError("the date \"" + std::string(text) + "\" does not exist (month " + std::to_string(mo) +
                                " has " + std::to_string(kDays[mo - 1] + (mo == 2 && leap ? 1 : 0)) + " days)");
  }
  return DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
}

Result<int64_t> ParseTimeBound(std::string_view text, bool end) {
  const bool has_time = text.find_first_of("T ") != std::string_view::npos;
  if (has_time) return ParseIsoTime(text);
  const size_t dashes = std::count(text.begin(), text.end(), '-');
  if (dashes == 2) {
    ASSIGN_OR_RETURN(int64_t day, ParseIsoTime(text));
    return end ? day + 86399 : day;
  }
  std::string first(text);
  if (dashes == 0) first += "-01";
  if (dashes <= 1) first += "-01";
  auto t0 = ParseIsoTime(first);
  if (!t0.ok() || dashes > 2) return InvalidArgumentError("cannot read the date \"" + std::string(text) + "\"");
  if (!end) return *t0;
  // The last second of the month or year: the first second of the next, less one.
  int64_t y = 0, m = 12;
  std::sscanf(first.c_str(), "%ld-%ld", &y, &m);
  if (dashes == 0) return DaysFromCivil(y + 1, 1, 1) * 86400 - 1;
  return DaysFromCivil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400 - 1;
}

std::string FormatIsoTime(int64_t t) {
  int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  int64_t secs = t - days * 86400;
  // civil_from_days
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld", (long long)y, (long long)m, (long long)d,
                (long long)(secs / 3600), (long long)(secs / 60 % 60), (long long)(secs % 60));
  return buf;
}

Result<CfTimeUnits> ParseCfTimeUnits(std::string_view units, std::string_view calendar) {
  size_t since = units.find(" since ");
  if (since == std::string_view::npos) {
    return InvalidArgumentError("time units \"" + std::string(units) + "\" are not \"<unit> since <date>\"");
  }
  std::string_view unit = units.substr(0, since);
  CfTimeUnits out;
  if (unit == "seconds" || unit == "second" || unit == "s" || unit == "sec" || unit == "secs")
    out.seconds_per_unit = 1;
  else if (unit == "minutes" || unit == "minute" || unit == "min" || unit == "mins")
    out.seconds_per_unit = 60;
  else if (unit == "hours" || unit == "hour" || unit == "h" || unit == "hr" || unit == "hrs")
    out.seconds_per_unit = 3600;
  else if (unit == "days" || unit == "day" || unit == "d")
    out.seconds_per_unit = 86400;
  else
    return UnimplementedError("time unit \"" + std::string(unit) + "\" (use seconds, minutes, hours or days)");
  ASSIGN_OR_RETURN(out.epoch, ParseIsoTime(units.substr(since + 7)));
  if (calendar.empty() || calendar == "proleptic_gregorian") return out;
  if (calendar == "standard" || calendar == "gregorian") {
    // Mixed Julian/Gregorian: identical to proleptic Gregorian from 1582-10-15 on.
    if (out.epoch < -12219292800) {
      return UnimplementedError("reference date before 1582-10-15 in the " + std::string(calendar) + " calendar");
    }
    return out;
  }
  return UnimplementedError("calendar \"" + std::string(calendar) +
                            "\" (supported: standard, gregorian, proleptic_gregorian)");
}

std::vector<int64_t> DecodeCfTimes(std::span<const double> values, const CfTimeUnits& u) {
  std::vector<int64_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = u.epoch + static_cast<int64_t>(std::llround(values[i] * static_cast<double>(u.seconds_per_unit)));
  }
  return out;
}

CfPacking CfPackingOf(const ArrayMetadata& a) {
  CfPacking p;
  const json& attrs = a.attributes;
  auto number = [](const json& v, double* out) {
    if (v.is_array() && v.size() == 1) return number_of(v[0], out);
    return number_of(v, out);
  };
  double v;
  if (attrs.contains("scale_factor") && number(attrs["scale_factor"], &v)) p.scale_factor = v;
  if (attrs.contains("add_offset") && number(attrs["add_offset"], &v)) p.add_offset = v;
  bool have_fill = false;
  for (const char* name : {"_FillValue", "missing_value"}) {
    if (!attrs.contains(name)) continue;
    const json& m = attrs[name];
    for (const json& x : m.is_array() ? m : json::array({m})) {
      if (number(x, &v)) {
        p.missing.push_back(v);
        have_fill |= std::string_view(name) == "_FillValue";
      }
    }
  }
  if (!have_fill && a.zarr_format == 2 && !a.fill_null) {
    double f = ElementToDouble(a.fill.data(), a.dtype);
    if (!std::isnan(f)) p.missing.push_back(f);
  }
  return p;
}

void UnpackCf(const char* raw, const DataType& dtype, int64_t count, const CfPacking& p, double* out) {
  for (int64_t i = 0; i < count; ++i) {
    double x = ElementToDouble(raw + i * dtype.size, dtype);
    bool missing = false;
    for (double m : p.missing) missing |= x == m;
    out[i] = missing ? std::nan("") : x * p.scale_factor + p.add_offset;
  }
}

int DayOfYear(int64_t t) {
  using namespace std::chrono;
  const int64_t day = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  const sys_days d{days{day}};
  const year_month_day ymd{d};
  return static_cast<int>((d - sys_days{ymd.year() / January / 1}).count()) + 1;
}

int64_t YearOf(int64_t t) {
  using namespace std::chrono;
  const int64_t day = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  return static_cast<int>(year_month_day{sys_days{days{day}}}.year());
}

int64_t SecondOfDay(int64_t t) { return ((t % 86400) + 86400) % 86400; }

namespace {

Status WriteCoordinate(KvStore* store, int zarr_format, const std::string& name, const DataType& dtype,
                       std::string_view bytes, int64_t n, json attributes) {
  ArraySpec s;
  s.zarr_format = zarr_format;
  s.shape = {n};
  s.chunks = {n};
  s.dtype = dtype;
  s.codec = "zstd";
  s.crc32c = zarr_format == 3;
  s.fill_value = dtype.kind == 'f' ? json("NaN") : dtype.kind == 'U' ? json("") : json(0);
  s.dimension_names = {name};
  s.attributes = attributes.is_null() ? json::object() : std::move(attributes);
  ASSIGN_OR_RETURN(ArrayMetadata m, MakeArrayMetadata(s));
  ASSIGN_OR_RETURN(auto a, Array::Create(store, name, std::move(m)));
  return a->Write(a->full_box(), bytes);
}

}  // namespace

Status WriteCoordinateArray(KvStore* store, int zarr_format, const std::string& name, const std::string& dtype,
                            std::string_view bytes, int64_t n, json attributes) {
  ASSIGN_OR_RETURN(DataType t, DataTypeFromName(dtype));
  return WriteCoordinate(store, zarr_format, name, t, bytes, n, std::move(attributes));
}

Status WriteTextCoordinateArray(KvStore* store, int zarr_format, const std::string& name,
                                const std::vector<std::string>& values, json attributes) {
  int64_t chars = 1;
  for (const auto& v : values) chars = std::max<int64_t>(chars, static_cast<int64_t>(v.size()));  // >= code points
  ASSIGN_OR_RETURN(DataType t, FixedLengthUtf32(chars));
  std::string bytes;
  for (const auto& v : values) {
    auto e = Utf8ToUtf32(v, t);
    if (!e.ok()) return e.status().Annotate("coordinate " + name);
    bytes += *e;
  }
  return WriteCoordinate(store, zarr_format, name, t, bytes, static_cast<int64_t>(values.size()),
                         std::move(attributes));
}

}  // namespace jigsaw
