#include "storage/zarr/npy.h"

#include <cstring>

namespace jigsaw {

std::string NpyDescr(const DataType& t) {
  if (t.name == "bfloat16") return "<f4";
  return V2TypeString(t, false).value();
}

Result<std::string> EncodeNpy(const DataType& dtype, const std::vector<int64_t>& shape, std::string_view data) {
  std::string dict = "{'descr': '" + NpyDescr(dtype) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i)
    dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  dict += "), }";
  // magic (6) + version (2) + header length (2) + dict + padding + '\n', total a multiple of 64.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(dict.size());
  out.push_back(static_cast<char>(len & 0xFF));
  out.push_back(static_cast<char>(len >> 8));
  out += dict;
  if (dtype.name != "bfloat16") {
    out += data;
    return out;
  }
  size_t n = data.size() / 2;
  size_t base = out.size();
  out.resize(base + 4 * n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, data.data() + 2 * i, 2);
    float f = BFloat16ToFloat(b);
    std::memcpy(out.data() + base + 4 * i, &f, 4);
  }
  return out;
}

}  // namespace jigsaw
