// Zarr data types and fill values. Elements are held in native (little-endian) byte order in memory;
// the bytes codec / v2 dtype byte order says how they are stored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw {

using json = nlohmann::json;

struct DataType {
  // Zarr v3 name: bool, int8..int64, uint8..uint64, float16, bfloat16, float32, float64, fixed_length_utf32
  std::string name;
  // 'b' bool, 'i' signed, 'u' unsigned, 'f' float (bfloat16 included), 'U' text of size / 4 UTF-32 code
  // points, NUL-padded (NumPy's "<U8", zarr-python's v3 "fixed_length_utf32": names such as channel names)
  char kind = 'f';
  int size = 4;                                             // bytes per element
  int swap_size() const { return kind == 'U' ? 4 : size; }  // the unit a byte-order change reverses
  bool operator==(const DataType& o) const { return name == o.name && size == o.size; }
};

Result<DataType> DataTypeFromName(std::string_view v3_name);
// Text of up to `chars` code points per element (chars >= 1).
Result<DataType> FixedLengthUtf32(int64_t chars);
// v3 "data_type": a name, or {"name": "fixed_length_utf32", "configuration": {"length_bytes": 4n}}; and back.
Result<DataType> DataTypeFromV3(const json& data_type);
json DataTypeToV3(const DataType& dtype);
// One 'U' element <-> UTF-8 (trailing NULs dropped). The encoder refuses text longer than the element or
// not valid UTF-8.
std::string Utf32ToUtf8(std::string_view element);
Result<std::string> Utf8ToUtf32(std::string_view utf8, const DataType& dtype);
// Parses a Zarr v2 / NumPy type string ("<f4", ">i2", "|u1", "|b1"); sets *big_endian.
Result<DataType> DataTypeFromV2(std::string_view typestr, bool* big_endian);
// The v2 / NumPy type string, or kUnimplemented for bfloat16.
Result<std::string> V2TypeString(const DataType& dtype, bool big_endian);

// Parses a JSON fill value into one native-order element. `null` gives zero bytes (v2 "no fill value");
// text types take a string.
Result<std::string> ParseFillValue(const json& value, const DataType& dtype);
// The JSON form: numbers, true/false, "NaN", "Infinity", "-Infinity".
json FillValueToJson(std::string_view element, const DataType& dtype);

// Reads one element of a numeric type as double (bool as 0/1).
double ElementToDouble(const char* element, const DataType& dtype);

float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);  // round to nearest even
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);  // round to nearest even, NaN kept NaN

}  // namespace jigsaw
