// gzip and zlib (deflate with RFC 1952 / RFC 1950 framing): Zarr v3 "gzip", numcodecs "gzip" and "zlib".
#include <zlib.h>

#include <cstring>

#include "storage/codec/codec.h"

namespace jigsaw {
namespace {

class DeflateCodec final : public BytesCodec {
 public:
  DeflateCodec(bool gzip, int level) : gzip_(gzip), level_(level) {}

  Result<std::string> Encode(std::string_view in) const override {
    z_stream zs{};
    if (deflateInit2(&zs, level_, Z_DEFLATED, gzip_ ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      return InternalError("deflateInit failed");
    }
    std::string out(deflateBound(&zs, in.size()) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&zs, Z_FINISH);
    size_t n = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) return InternalError(name() + ": compression failed");
    out.resize(n);
    return out;
  }

  Result<std::string> Decode(std::string_view in, size_t max_size) const override {
    std::string out;
    RETURN_IF_ERROR(Inflate(in, max_size, &out, {}));
    return out;
  }

  Status DecodeInto(std::string_view in, std::span<char> out) const override {
    return Inflate(in, out.size(), nullptr, out);
  }

  json ToV3() const override {
    if (!gzip_) return {{"name", "numcodecs.zlib"}, {"configuration", {{"level", level_}}}};
    return {{"name", "gzip"}, {"configuration", {{"level", level_}}}};
  }
  Result<json> ToV2() const override { return json{{"id", gzip_ ? "gzip" : "zlib"}, {"level", level_}}; }
  std::string name() const override { return std::string(gzip_ ? "gzip(" : "zlib(") + std::to_string(level_) + ")"; }

 private:
  // Inflates into `grow` (bounded by max_size) or into `fixed` (exactly filled).
  Status Inflate(std::string_view in, size_t max_size, std::string* grow, std::span<char> fixed) const {
    z_stream zs{};
    if (inflateInit2(&zs, gzip_ ? 15 + 16 : 15) != Z_OK) return InternalError("inflateInit failed");
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    std::string chunk;
    int rc = Z_OK;
    size_t total = 0;
    Status st;
    while (rc != Z_STREAM_END) {
      char* dst;
      size_t room;
      if (grow) {
        chunk.resize(64 * 1024);
        dst = chunk.data();
        room = chunk.size();
      } else {
        dst = fixed.data() + total;
        room = fixed.size() - total;
        if (room == 0) {  // only end-of-stream may remain: probe with a scratch byte
          chunk.resize(1);
          dst = chunk.data();
          room = 1;
        }
      }
      zs.next_out = reinterpret_cast<Bytef*>(dst);
      zs.avail_out = static_cast<uInt>(room);
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        st = DataLossError(name() + ": corrupt or truncated stream" + (zs.msg ? std::string(" (") + zs.msg + ")" : ""));
        break;
      }
      size_t produced = room - zs.avail_out;
      if (total + produced > max_size || (!grow && dst == chunk.data() && produced > 0)) {
        st = DataLossError(name() + ": decoded data exceeds the " + std::to_string(max_size) + "-byte chunk");
        break;
      }
      if (grow) grow->append(dst, produced);
      total += produced;
      if (rc == Z_OK && produced == 0 && zs.avail_in == 0) {
        st = DataLossError(name() + ": truncated stream");
        break;
      }
    }
    inflateEnd(&zs);
    if (!st.ok()) return st;
    if (!grow && total != fixed.size()) {
      return DataLossError(name() + ": " + std::to_string(total) + " decoded bytes, expected " +
                           std::to_string(fixed.size()));
    }
    return OkStatus();
  }

  bool gzip_;
  int level_;
};

}  // namespace

Result<std::unique_ptr<BytesCodec>> NewGzipCodec(int level) {
  if (level < 0 || level > 9) return InvalidArgumentError("gzip: level must be 0..9");
  return std::unique_ptr<BytesCodec>(new DeflateCodec(true, level));
}

Result<std::unique_ptr<BytesCodec>> NewZlibCodec(int level) {
  if (level < 0 || level > 9) return InvalidArgumentError("zlib: level must be 0..9");
  return std::unique_ptr<BytesCodec>(new DeflateCodec(false, level));
}

}  // namespace jigsaw
