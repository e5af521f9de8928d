#include "pipeline/sources/netcdf_classic_size.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

namespace jigsaw {
namespace {

// Big-endian fields of the header, read in order; fails (returns false) past the end of the file.
class HeaderReader {
 public:
  HeaderReader(std::istream& in, bool cdf5) : in_(in), cdf5_(cdf5) {}
  bool U32(uint64_t* v) { return Big(4, v); }
  bool U64(uint64_t* v) { return Big(8, v); }
  // NON_NEG / nelems: 4 bytes, 8 in CDF-5.
  bool Count(uint64_t* v) { return Big(cdf5_ ? 8 : 4, v); }
  bool Skip(uint64_t n) {
    in_.seekg(static_cast<std::streamoff>(n), std::ios::cur);
    return static_cast<bool>(in_);
  }
  bool Name() {  // nelems, then the characters padded to 4
    uint64_t n;
    return Count(&n) && n < (1u << 20) && Skip((n + 3) / 4 * 4);
  }

 private:
  bool Big(int bytes, uint64_t* v) {
    unsigned char b[8];
    if (!in_.read(reinterpret_cast<char*>(b), bytes)) return false;
    *v = 0;
    for (int i = 0; i < bytes; ++i) *v = *v << 8 | b[i];
    return true;
  }
  std::istream& in_;
  bool cdf5_;
};

int TypeSize(uint64_t nc_type) {
  switch (nc_type) {
    case 1:
    case 2:
    case 7: return 1;  // byte, char, ubyte
    case 3:
    case 8: return 2;  // short, ushort
    case 4:
    case 5:
    case 9: return 4;  // int, float, uint
    case 6:
    case 10:
    case 11: return 8;  // double, int64, uint64
    default: return 0;
  }
}

constexpr uint64_t kDimensionTag = 10, kVariableTag = 11, kAttributeTag = 12;

}  // namespace

Status CheckClassicNetcdfSize(const std::string& local, const std::string& name) {
  std::ifstream in(local, std::ios::binary);
  char magic[4];
  if (!in || !in.read(magic, 4) || magic[0] != 'C' || magic[1] != 'D' || magic[2] != 'F') return OkStatus();
  const int version = magic[3];
  if (version != 1 && version != 2 && version != 5) return OkStatus();  // libnetcdf will say what it is
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(local, ec);
  if (ec) return OkStatus();
  const bool cdf5 = version == 5;
  HeaderReader h(in, cdf5);
  auto truncated_header = [&] {
    return DataLossError(name + ": the NetCDF header ends before it is complete (" + std::to_string(file_size) +
                         " bytes): the file is truncated");
  };
  uint64_t numrecs;
  if (!h.Count(&numrecs)) return truncated_header();
  const bool streaming = cdf5 ? numrecs == UINT64_MAX : numrecs == 0xFFFFFFFFu;
  // Dimensions: their lengths (0 marks the record dimension).
  uint64_t tag, n;
  if (!h.U32(&tag) || !h.Count(&n)) return truncated_header();
  std::vector<uint64_t> dims;
  if (tag == kDimensionTag) {
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t len;
      if (!h.Name() || !h.Count(&len)) return truncated_header();
      dims.push_back(len);
    }
  }
  auto skip_attributes = [&]() -> bool {
    uint64_t atag, count;
    if (!h.U32(&atag) || !h.Count(&count)) return false;
    if (atag != kAttributeTag) return true;  // ABSENT
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t type, nelems;
      if (!h.Name() || !h.U32(&type) || !h.Count(&nelems)) return false;
      const int size = TypeSize(type);
      if (size == 0 || !h.Skip((nelems * size + 3) / 4 * 4)) return false;
    }
    return true;
  };
  if (!skip_attributes()) return truncated_header();
  // Variables: where each one's data end, from its shape, type and offset.
  if (!h.U32(&tag) || !h.Count(&n)) return truncated_header();
  if (tag != kVariableTag) return OkStatus();  // no variables
  struct Var {
    uint64_t begin, bytes;  // bytes of one record (record variables) or of the whole variable
    bool record;
  };
  std::vector<Var> vars;
  uint64_t record_size = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t ndims;
    if (!h.Name() || !h.Count(&ndims) || ndims > 1024) return truncated_header();
    Var v{0, 1, false};
    for (uint64_t d = 0; d < ndims; ++d) {
      uint64_t id;
      if (!h.Count(&id) || id >= dims.size()) return truncated_header();
      if (dims[id] == 0 && d == 0) {
        v.record = true;
      } else {
        v.bytes *= dims[id];
      }
    }
    uint64_t type, vsize, begin;
    if (!skip_attributes() || !h.U32(&type) || !h.Count(&vsize)) return truncated_header();
    if (!(version == 1 ? h.U32(&begin) : h.U64(&begin))) return truncated_header();
    v.bytes *= TypeSize(type);
    v.begin = begin;
    vars.push_back(v);
  }
  int records = 0;
  for (auto& v : vars) {
    records += v.record;
  }
  for (auto& v : vars) {
    if (!(records == 1 && v.record)) v.bytes = (v.bytes + 3) / 4 * 4;  // padded, but a lone record variable
    if (v.record) record_size += v.bytes;
  }
  uint64_t end = 0;
  for (const auto& v : vars) {
    if (!v.record) {
      end = std::max(end, v.begin + v.bytes);
    } else if (!streaming && numrecs > 0) {
      end = std::max(end, v.begin + (numrecs - 1) * record_size + v.bytes);
    }
  }
  // The last variable's padding may be missing from a file written by other tools: allow up to 3 bytes.
  if (file_size + 3 < end) {
    return DataLossError(name + " is " + std::to_string(file_size) +
                         " bytes, but its NetCDF header places data up to byte " + std::to_string(end) +
                         ": the file is truncated (an interrupted download or copy?)");
  }
  return OkStatus();
}

}  // namespace jigsaw
