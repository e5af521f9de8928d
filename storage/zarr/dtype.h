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
  std::string name;  // Zarr v3 name: bool, int8..int64, uint8..uint64, float16, bfloat16, float32, float64
  char kind = 'f';   // 'b' bool, 'i' signed, 'u' unsigned, 'f' float (bfloat16 included)
  int size = 4;      // bytes per element
  bool operator==(const DataType& o) const { return name == o.name; }
};

Result<DataType> DataTypeFromName(std::string_view v3_name);
// Parses a Zarr v2 / NumPy type string ("<f4", ">i2", "|u1", "|b1"); sets *big_endian.
Result<DataType> DataTypeFromV2(std::string_view typestr, bool* big_endian);
// The v2 / NumPy type string, or kUnimplemented for bfloat16.
Result<std::string> V2TypeString(const DataType& dtype, bool big_endian);

// Parses a JSON fill value into one native-order element. `null` gives zero bytes (v2 "no fill value").
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
