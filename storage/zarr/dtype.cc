#include "storage/zarr/dtype.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace jigsaw {
namespace {

struct TypeRow {
  const char* name;
  char kind;
  int size;
};
constexpr TypeRow kTypes[] = {
    {"bool", 'b', 1},     {"int8", 'i', 1},    {"int16", 'i', 2},   {"int32", 'i', 4},  {"int64", 'i', 8},
    {"uint8", 'u', 1},    {"uint16", 'u', 2},  {"uint32", 'u', 4},  {"uint64", 'u', 8}, {"float16", 'f', 2},
    {"bfloat16", 'f', 2}, {"float32", 'f', 4}, {"float64", 'f', 8},
};

template <typename T>
std::string Bytes(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}

template <typename T>
Result<std::string> IntFill(const json& v) {
  if (v.is_boolean()) return Bytes<T>(v.get<bool>() ? 1 : 0);
  if (v.is_number_integer()) {
    if (std::is_signed_v<T> ? v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<T>::max())
                            : !v.is_number_unsigned() && v.get<int64_t>() < 0) {
      return InvalidArgumentError("fill value " + v.dump() + " out of range");
    }
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<T>::max()))
        return InvalidArgumentError("fill value " + v.dump() + " out of range");
      return Bytes<T>(static_cast<T>(u));
    }
    int64_t i = v.get<int64_t>();
    if (i < int64_t(std::numeric_limits<T>::min()) || (i > 0 && uint64_t(i) > uint64_t(std::numeric_limits<T>::max())))
      return InvalidArgumentError("fill value " + v.dump() + " out of range");
    return Bytes<T>(static_cast<T>(i));
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    const double limit = std::ldexp(1.0, 8 * sizeof(T) - (std::is_signed_v<T> ? 1 : 0));  // exclusive max
    if (std::floor(d) == d && d >= static_cast<double>(std::numeric_limits<T>::min()) && d < limit) {
      return Bytes<T>(static_cast<T>(d));
    }
    return InvalidArgumentError("fill value " + v.dump() + " is not an integer in range");
  }
  return InvalidArgumentError("fill value " + v.dump() + " is not an integer");
}

}  // namespace

Result<DataType> DataTypeFromName(std::string_view name) {
  for (const auto& t : kTypes)
    if (name == t.name) return DataType{t.name, t.kind, t.size};
  return UnimplementedError("unsupported data type \"" + std::string(name) + "\"");
}

Result<DataType> FixedLengthUtf32(int64_t chars) {
  if (chars < 1 || chars > (1 << 20)) {
    return InvalidArgumentError("a text element holds 1 to 2^20 characters, not " + std::to_string(chars));
  }
  return DataType{"fixed_length_utf32", 'U', static_cast<int>(4 * chars)};
}

Result<DataType> DataTypeFromV3(const json& dt) {
  if (dt.is_string()) return DataTypeFromName(dt.get<std::string>());
  const std::string name = dt.is_object() ? dt.value("name", "") : "";
  if (name != "fixed_length_utf32") return DataTypeFromName(name);
  const json config = dt.value("configuration", json::object());
  const json bytes = config.is_object() ? config.value("length_bytes", json()) : json();
  if (!bytes.is_number_integer() || bytes.get<int64_t>() % 4 != 0) {
    return InvalidArgumentError("fixed_length_utf32 needs a configuration length_bytes, a multiple of 4: " + dt.dump());
  }
  return FixedLengthUtf32(bytes.get<int64_t>() / 4);
}

json DataTypeToV3(const DataType& t) {
  if (t.kind != 'U') return t.name;
  return {{"name", t.name}, {"configuration", {{"length_bytes", t.size}}}};
}

std::string Utf32ToUtf8(std::string_view e) {
  std::string out;
  for (size_t i = 0; i + 4 <= e.size(); i += 4) {
    uint32_t c;
    std::memcpy(&c, e.data() + i, 4);
    if (c == 0) break;
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;  // not a code point: the replacement character
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | c >> 6);
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | c >> 12);
      out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | c >> 18);
      out += static_cast<char>(0x80 | (c >> 12 & 0x3F));
      out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

Result<std::string> Utf8ToUtf32(std::string_view s, const DataType& t) {
  std::string out(t.size, '\0');
  const auto not_utf8 = [&] { return InvalidArgumentError("\"" + std::string(s) + "\" is not UTF-8"); };
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return not_utf8();
    uint32_t c = len == 1 ? b : b & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xC0) != 0x80) return not_utf8();
      c = c << 6 | (cont & 0x3F);
    }
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      return not_utf8();
    }
    if (4 * (n + 1) > static_cast<size_t>(t.size)) {
      return InvalidArgumentError("\"" + std::string(s) + "\" is longer than " + std::to_string(t.size / 4) +
                                  " characters");
    }
    std::memcpy(out.data() + 4 * n++, &c, 4);
    i += len;
  }
  return out;
}

Result<DataType> DataTypeFromV2(std::string_view s, bool* big_endian) {
  if (s.size() < 3) return UnimplementedError("unsupported dtype \"" + std::string(s) + "\"");
  char order = s[0], kind = s[1];
  if (order != '<' && order != '>' && order != '|' && order != '=') {
    return UnimplementedError("unsupported dtype \"" + std::string(s) + "\"");
  }
  int size = 0;
  for (char c : s.substr(2)) {
    if (c < '0' || c > '9') return UnimplementedError("unsupported dtype \"" + std::string(s) + "\"");
    size = size * 10 + (c - '0');
    if (size > 64) break;
  }
  *big_endian = order == '>';
  if (kind == 'U') {  // the digits count characters; the loop above stopped early past 64
    int64_t chars = 0;
    auto [end, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), chars);
    if (ec != std::errc() || end != s.data() + s.size()) {
      return UnimplementedError("unsupported dtype \"" + std::string(s) + "\"");
    }
    return FixedLengthUtf32(chars);
  }
  std::string name;
  if (kind == 'b' && size == 1)
    name = "bool";
  else if (kind == 'i' && (size == 1 || size == 2 || size == 4 || size == 8))
    name = "int" + std::to_string(size * 8);
  else if (kind == 'u' && (size == 1 || size == 2 || size == 4 || size == 8))
    name = "uint" + std::to_string(size * 8);
  else if (kind == 'f' && (size == 2 || size == 4 || size == 8))
    name = "float" + std::to_string(size * 8);
  else
    return UnimplementedError("unsupported dtype \"" + std::string(s) +
                              "\" (complex, string and structured types are not supported)");
  return DataTypeFromName(name);
}

Result<std::string> V2TypeString(const DataType& t, bool big_endian) {
  if (t.name == "bfloat16") return UnimplementedError("bfloat16 has no Zarr v2 dtype; use zarr3");
  char kind = t.kind;
  char order = t.size == 1 ? '|' : big_endian ? '>' : '<';
  return std::string(1, order) + kind + std::to_string(kind == 'U' ? t.size / 4 : t.size);
}

Result<std::string> ParseFillValue(const json& v, const DataType& t) {
  if (v.is_null()) return std::string(t.size, '\0');
  if (t.kind == 'U') {
    if (!v.is_string()) return InvalidArgumentError("fill value " + v.dump() + " of a text array is not a string");
    return Utf8ToUtf32(v.get<std::string>(), t);
  }
  if (t.kind == 'b') {
    if (v.is_boolean()) return std::string(1, v.get<bool>() ? '\1' : '\0');
    if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1))
      return std::string(1, char(v.get<int64_t>()));
    return InvalidArgumentError("fill value " + v.dump() + " is not a bool");
  }
  if (t.kind == 'i' || t.kind == 'u') {
    switch (t.size * (t.kind == 'i' ? 1 : -1)) {
      case 1: return IntFill<int8_t>(v);
      case 2: return IntFill<int16_t>(v);
      case 4: return IntFill<int32_t>(v);
      case 8: return IntFill<int64_t>(v);
      case -1: return IntFill<uint8_t>(v);
      case -2: return IntFill<uint16_t>(v);
      case -4: return IntFill<uint32_t>(v);
      default: return IntFill<uint64_t>(v);
    }
  }
  double d;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "NaN")
      d = std::numeric_limits<double>::quiet_NaN();
    else if (s == "Infinity")
      d = std::numeric_limits<double>::infinity();
    else if (s == "-Infinity")
      d = -std::numeric_limits<double>::infinity();
    else if (s.starts_with("0x") && s.size() == 2 + 2 * static_cast<size_t>(t.size)) {
      uint64_t bits = std::stoull(s.substr(2), nullptr, 16);
      std::string out(t.size, '\0');
      std::memcpy(out.data(), &bits, t.size);
      return out;
    } else {
      return InvalidArgumentError("fill value \"" + s + "\" is not a number");
    }
  } else {
    return InvalidArgumentError("fill value " + v.dump() + " is not a number");
  }
  if (t.name == "float64") return Bytes<double>(d);
  if (t.name == "float32") return Bytes<float>(static_cast<float>(d));
  if (t.name == "float16") return Bytes<uint16_t>(FloatToHalf(static_cast<float>(d)));
  return Bytes<uint16_t>(FloatToBFloat16(static_cast<float>(d)));
}

double ElementToDouble(const char* p, const DataType& t) {
  if (t.kind == 'U') return std::numeric_limits<double>::quiet_NaN();  // text is no number
  auto get = [&](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p, sizeof(v));
    return static_cast<double>(v);
  };
  if (t.kind == 'b') return *p ? 1.0 : 0.0;
  if (t.kind == 'i') {
    switch (t.size) {
      case 1: return get(int8_t{});
      case 2: return get(int16_t{});
      case 4: return get(int32_t{});
      default: return get(int64_t{});
    }
  }
  if (t.kind == 'u') {
    switch (t.size) {
      case 1: return get(uint8_t{});
      case 2: return get(uint16_t{});
      case 4: return get(uint32_t{});
      default: return get(uint64_t{});
    }
  }
  if (t.name == "float64") return get(double{});
  if (t.name == "float32") return get(float{});
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t.name == "float16" ? HalfToFloat(h) : BFloat16ToFloat(h);
}

json FillValueToJson(std::string_view e, const DataType& t) {
  if (t.kind == 'b') return e[0] != 0;
  if (t.kind == 'U') return Utf32ToUtf8(e);
  if (t.kind == 'i') {
    int64_t v = 0;
    std::memcpy(&v, e.data(), t.size);
    const int unused = 64 - 8 * t.size;  // sign-extend the narrower types
    if (unused > 0) v = static_cast<int64_t>(static_cast<uint64_t>(v) << unused) >> unused;
    return v;
  }
  if (t.kind == 'u') {
    uint64_t v = 0;
    std::memcpy(&v, e.data(), t.size);
    return v;
  }
  double d = ElementToDouble(e.data(), t);
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return d;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3FF) << 13;
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | man << 13;
  } else {
    bits = sign | (exp + 112) << 23 | man << 13;
  }
  return std::bit_cast<float>(bits);
}

uint16_t FloatToHalf(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint16_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7FFFFFFF;
  if (absx > 0x7F800000) return sign | 0x7E00;   // NaN
  if (absx >= 0x477FF000) return sign | 0x7C00;  // overflow (after rounding) -> inf
  if (absx < 0x38800000) {                       // subnormal or zero
    if (absx < 0x33000000) return sign;
    uint32_t man = (absx & 0x7FFFFF) | 0x800000;
    int shift = 126 - int(absx >> 23);  // 14 + (113 - exp)
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t h = ((absx >> 13) - (112u << 10));
  uint32_t rem = absx & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  return std::bit_cast<float>(bits);
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace jigsaw
