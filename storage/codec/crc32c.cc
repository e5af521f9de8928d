// CRC-32C: the crc32c codec (4-byte little-endian checksum appended to the encoded bytes) and the
// checksum function itself (hardware instruction when available, else a slicing-by-8 table).
#include "storage/codec/crc32c.h"

#include <array>
#include <cstring>

#include "storage/codec/codec.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace jigsaw {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reversed Castagnoli polynomial

struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (int s = 1; s < 8; ++s)
      for (uint32_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};

uint32_t Crc32cTable(const unsigned char* p, size_t n, uint32_t c) {
  static const Tables tables;
  const auto& t = tables.t;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    v ^= c;
    c = t[7][v & 0xFF] ^ t[6][(v >> 8) & 0xFF] ^ t[5][(v >> 16) & 0xFF] ^ t[4][(v >> 24) & 0xFF] ^
        t[3][(v >> 32) & 0xFF] ^ t[2][(v >> 40) & 0xFF] ^ t[1][(v >> 48) & 0xFF] ^ t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return c;
}

// Polynomial arithmetic modulo the CRC-32C polynomial, bit-reflected (bit 31 is x^0), to join CRCs of
// pieces computed independently: the register after A then B is (register after A) * x^(8 |B|) xor the
// register of B alone.
constexpr uint32_t kPolyReflected = 0x82F63B78;

uint32_t MulModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) product ^= b;
    b = b & 1 ? (b >> 1) ^ kPolyReflected : b >> 1;  // b *= x
  }
  return product;
}

// x^(8 * bytes) mod P.
uint32_t XPow8n(uint64_t bytes) {
  uint32_t result = 1u << 31, base = 1u << 30;  // x^0, x^1
  for (uint64_t e = 8 * bytes; e != 0; e >>= 1) {
    if (e & 1) result = MulModP(result, base);
    base = MulModP(base, base);
  }
  return result;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(const unsigned char* p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  // The instruction has a latency of 3 cycles and a throughput of 1: three independent streams over
  // three consecutive lanes of a round keep it busy, and the lanes' registers are joined after each round.
  constexpr size_t kLane = 4096;
  static const uint32_t kShift = XPow8n(kLane);
  while (n >= 3 * kLane) {
    uint64_t a = c64, b = 0, d = 0;
    for (size_t i = 0; i < kLane; i += 8) {
      uint64_t va, vb, vd;
      std::memcpy(&va, p + i, 8);
      std::memcpy(&vb, p + kLane + i, 8);
      std::memcpy(&vd, p + 2 * kLane + i, 8);
      a = _mm_crc32_u64(a, va);
      b = _mm_crc32_u64(b, vb);
      d = _mm_crc32_u64(d, vd);
    }
    uint32_t joined = MulModP(kShift, static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b);
    c64 = MulModP(kShift, joined) ^ static_cast<uint32_t>(d);
    p += 3 * kLane;
    n -= 3 * kLane;
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c64);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

class Crc32cCodec final : public BytesCodec {
 public:
  Result<std::string> Encode(std::string_view in) const override {
    std::string out(in);
    uint32_t c = Crc32c(in);
    char le[4] = {char(c), char(c >> 8), char(c >> 16), char(c >> 24)};
    out.append(le, 4);
    return out;
  }
  Result<std::string> Decode(std::string_view in, size_t max_size) const override {
    RETURN_IF_ERROR(Check(in));
    if (in.size() - 4 > max_size) return DataLossError("crc32c: payload larger than the chunk");
    return std::string(in.substr(0, in.size() - 4));
  }
  Status DecodeInto(std::string_view in, std::span<char> out) const override {
    RETURN_IF_ERROR(Check(in));
    if (in.size() - 4 != out.size()) {
      return DataLossError("crc32c: payload of " + std::to_string(in.size() - 4) + " bytes, expected " +
                           std::to_string(out.size()));
    }
    std::memcpy(out.data(), in.data(), out.size());
    return OkStatus();
  }
  int64_t fixed_overhead() const override { return 4; }
  json ToV3() const override { return {{"name", "crc32c"}}; }
  std::string name() const override { return "crc32c"; }

 private:
  static Status Check(std::string_view in) { return CheckCrc32cSuffix(in); }
};

}  // namespace

uint32_t Crc32c(std::string_view data, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  uint32_t c = ~crc;
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return ~Crc32cHardware(p, data.size(), c);
#endif
  return ~Crc32cTable(p, data.size(), c);
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  // Linear in the register, and the initial and final inversions cancel (see MulModP).
  return MulModP(XPow8n(length_b), crc_a) ^ crc_b;
}

std::unique_ptr<BytesCodec> NewCrc32cCodec() { return std::make_unique<Crc32cCodec>(); }

Status CheckCrc32cSuffix(std::string_view in) {
  if (in.size() < 4) return DataLossError("crc32c: encoded value shorter than its checksum");
  const auto* t = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
  uint32_t stored = t[0] | (t[1] << 8) | (t[2] << 16) | (uint32_t(t[3]) << 24);
  uint32_t actual = Crc32c(in.substr(0, in.size() - 4));
  if (stored != actual) return DataLossError("crc32c checksum mismatch");
  return OkStatus();
}

}  // namespace jigsaw
