// zstd: Zarr v3 "zstd" codec and numcodecs "zstd" compressor. Frames without a content size are decoded
// by streaming into a buffer that never grows past the bound.
#include <zstd.h>

#include <cstring>

#include "storage/codec/codec.h"

namespace jigsaw {
namespace {

class ZstdCodec final : public BytesCodec {
 public:
  ZstdCodec(int level, bool checksum) : level_(level), checksum_(checksum) {}

  Result<std::string> Encode(std::string_view in) const override {
    std::string out;
    RETURN_IF_ERROR(EncodeInto(in, &out));
    return out;
  }

  Status EncodeInto(std::string_view in, std::string* out) const override {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level_);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum_ ? 1 : 0);
    size_t n = 0;
    const size_t bound = ZSTD_compressBound(in.size());
    out->resize_and_overwrite(bound, [&](char* p, size_t) {  // no zero-fill of the output
      n = ZSTD_compress2(cctx, p, bound, in.data(), in.size());
      return ZSTD_isError(n) ? 0 : n;
    });
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(n)) return InternalError(std::string("zstd: ") + ZSTD_getErrorName(n));
    return OkStatus();
  }

  Result<std::string> Decode(std::string_view in, size_t max_size) const override {
    unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
    if (size == ZSTD_CONTENTSIZE_ERROR) return DataLossError("zstd: not a zstd frame");
    if (size != ZSTD_CONTENTSIZE_UNKNOWN) {
      if (size > max_size) {
        return DataLossError("zstd: frame claims " + std::to_string(size) + " decoded bytes, at most " +
                             std::to_string(max_size) + " fit the chunk");
      }
      std::string out(size, '\0');
      RETURN_IF_ERROR(DecodeInto(in, out));
      return out;
    }
    return Stream(in, max_size);
  }

  Status DecodeInto(std::string_view in, std::span<char> out) const override {
    unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
    if (size == ZSTD_CONTENTSIZE_ERROR) return DataLossError("zstd: not a zstd frame");
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
      ASSIGN_OR_RETURN(std::string s, Stream(in, out.size()));
      if (s.size() != out.size()) return SizeError(s.size(), out.size());
      std::memcpy(out.data(), s.data(), s.size());
      return OkStatus();
    }
    if (size != out.size()) return SizeError(size, out.size());
    size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n)) return DataLossError(std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != out.size()) return SizeError(n, out.size());
    return OkStatus();
  }

  json ToV3() const override {
    return {{"name", "zstd"}, {"configuration", {{"level", level_}, {"checksum", checksum_}}}};
  }
  // "checksum" only when set: numcodecs before 0.12 (Debian 12's zarr 2 stack) refuses the key.
  Result<json> ToV2() const override {
    json j{{"id", "zstd"}, {"level", level_}};
    if (checksum_) j["checksum"] = true;
    return j;
  }
  std::string name() const override { return "zstd(" + std::to_string(level_) + ")"; }

 private:
  static Status SizeError(uint64_t got, uint64_t want) {
    return DataLossError("zstd: " + std::to_string(got) + " decoded bytes, expected " + std::to_string(want));
  }
  static Result<std::string> Stream(std::string_view in, size_t max_size) {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    std::string out;
    std::string buf(ZSTD_DStreamOutSize(), '\0');
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    size_t ret = 1;
    Status st;
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
      ret = ZSTD_decompressStream(dctx, &ob, &ib);
      if (ZSTD_isError(ret)) {
        st = DataLossError(std::string("zstd: ") + ZSTD_getErrorName(ret));
        break;
      }
      if (out.size() + ob.pos > max_size) {
        st = DataLossError("zstd: decoded data exceeds the " + std::to_string(max_size) + "-byte chunk");
        break;
      }
      out.append(buf.data(), ob.pos);
      if (ob.pos == 0 && ret != 0 && ib.pos == ib.size) break;
    }
    ZSTD_freeDCtx(dctx);
    if (!st.ok()) return st;
    if (ret != 0) return DataLossError("zstd: truncated frame");
    return out;
  }

  int level_;
  bool checksum_;
};

}  // namespace

Result<std::unique_ptr<BytesCodec>> NewZstdCodec(int level, bool checksum) {
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) return InvalidArgumentError("zstd: bad level");
  return std::unique_ptr<BytesCodec>(new ZstdCodec(level, checksum));
}

}  // namespace jigsaw
