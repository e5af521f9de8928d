// blosc (c-blosc 1.x): Zarr v3 "blosc" codec and the numcodecs "blosc" compressor of Zarr v2.
#include <blosc.h>

#include <cstring>

#include "storage/codec/codec.h"
#include "storage/codec/json_fields.h"

namespace jigsaw {
namespace {

constexpr const char* kShuffleNames[] = {"noshuffle", "shuffle", "bitshuffle"};

class BloscCodec final : public BytesCodec {
 public:
  BloscCodec(std::string cname, int clevel, int shuffle, int typesize, int64_t blocksize)
      : cname_(std::move(cname)), clevel_(clevel), shuffle_(shuffle), typesize_(typesize), blocksize_(blocksize) {}

  Result<std::string> Encode(std::string_view in) const override {
    std::string out;
    RETURN_IF_ERROR(EncodeInto(in, &out));
    return out;
  }

  Status EncodeInto(std::string_view in, std::string* out) const override {
    if (in.size() > static_cast<size_t>(BLOSC_MAX_BUFFERSIZE)) {
      return InvalidArgumentError("blosc: chunk of " + std::to_string(in.size()) +
                                  " bytes exceeds blosc's 2 GiB limit; use smaller chunks");
    }
    int n = 0;
    const size_t bound = in.size() + BLOSC_MAX_OVERHEAD;
    out->resize_and_overwrite(bound, [&](char* p, size_t) {  // no zero-fill of the output
      n = blosc_compress_ctx(clevel_, shuffle_, static_cast<size_t>(typesize_), in.size(), in.data(), p, bound,
                             cname_.c_str(), static_cast<size_t>(blocksize_), 1);
      return n > 0 ? static_cast<size_t>(n) : 0;
    });
    if (n <= 0) return InternalError("blosc: compression failed (" + std::to_string(n) + ")");
    return OkStatus();
  }

  Result<std::string> Decode(std::string_view in, size_t max_size) const override {
    ASSIGN_OR_RETURN(size_t nbytes, Validate(in, max_size));
    std::string out(nbytes, '\0');
    RETURN_IF_ERROR(Run(in, out.data(), nbytes));
    return out;
  }

  Status DecodeInto(std::string_view in, std::span<char> out) const override {
    ASSIGN_OR_RETURN(size_t nbytes, Validate(in, out.size()));
    if (nbytes != out.size()) {
      return DataLossError("blosc: header says " + std::to_string(nbytes) + " decoded bytes, expected " +
                           std::to_string(out.size()));
    }
    return Run(in, out.data(), nbytes);
  }

  json ToV3() const override {
    return {{"name", "blosc"},
            {"configuration",
             {{"cname", cname_},
              {"clevel", clevel_},
              {"shuffle", kShuffleNames[shuffle_]},
              {"typesize", typesize_},
              {"blocksize", blocksize_}}}};
  }
  Result<json> ToV2() const override {
    return json{
        {"id", "blosc"}, {"cname", cname_}, {"clevel", clevel_}, {"shuffle", shuffle_}, {"blocksize", blocksize_}};
  }
  std::string name() const override {
    return "blosc(" + cname_ + "," + std::to_string(clevel_) + "," + kShuffleNames[shuffle_] + ")";
  }

 private:
  static Result<size_t> Validate(std::string_view in, size_t max_size) {
    size_t nbytes = 0, cbytes = 0, blocksize = 0;
    if (in.size() < BLOSC_MIN_HEADER_LENGTH) return DataLossError("blosc: chunk shorter than its header");
    if (blosc_cbuffer_validate(in.data(), in.size(), &nbytes) < 0) {
      return DataLossError("blosc: corrupt header (sizes inconsistent with the " + std::to_string(in.size()) +
                           "-byte chunk)");
    }
    blosc_cbuffer_sizes(in.data(), &nbytes, &cbytes, &blocksize);
    if (cbytes != in.size()) {
      return DataLossError("blosc: header says " + std::to_string(cbytes) + " compressed bytes, chunk has " +
                           std::to_string(in.size()));
    }
    if (nbytes > max_size) {
      return DataLossError("blosc: header claims " + std::to_string(nbytes) + " decoded bytes, at most " +
                           std::to_string(max_size) + " fit the chunk");
    }
    return nbytes;
  }
  static Status Run(std::string_view in, char* out, size_t nbytes) {
    if (nbytes == 0) return OkStatus();
    int n = blosc_decompress_ctx(in.data(), out, nbytes, 1);
    if (n < 0 || static_cast<size_t>(n) != nbytes) {
      return DataLossError("blosc: corrupt compressed data (" + std::to_string(n) + ")");
    }
    return OkStatus();
  }

  std::string cname_;
  int clevel_, shuffle_, typesize_;
  int64_t blocksize_;
};

}  // namespace

Result<std::unique_ptr<BytesCodec>> NewBloscCodec(std::string cname, int clevel, int shuffle, int typesize,
                                                  int64_t blocksize) {
  static const char* kKnown[] = {"lz4", "lz4hc", "blosclz", "zstd", "zlib", "snappy"};
  bool known = false;
  for (const char* k : kKnown) known |= cname == k;
  if (!known) return InvalidArgumentError("blosc: unknown cname \"" + cname + "\"");
  const char* compressors = blosc_list_compressors();
  if (std::string_view(compressors).find(cname) == std::string_view::npos) {
    return UnimplementedError("blosc: this libblosc lacks \"" + cname + "\" (has " + compressors + ")");
  }
  if (clevel < 0 || clevel > 9) return InvalidArgumentError("blosc: clevel must be 0..9");
  if (shuffle < 0 || shuffle > 2) return InvalidArgumentError("blosc: unknown shuffle");
  if (typesize < 1 || typesize > BLOSC_MAX_TYPESIZE) return InvalidArgumentError("blosc: bad typesize");
  if (blocksize < 0) return InvalidArgumentError("blosc: negative blocksize");
  return std::unique_ptr<BytesCodec>(new BloscCodec(std::move(cname), clevel, shuffle, typesize, blocksize));
}

Result<std::unique_ptr<BytesCodec>> BloscFromV3(const json& config, int item_size) {
  std::string cname = config.value("cname", "lz4");
  ASSIGN_OR_RETURN(int64_t clevel, IntField(config, "clevel", 5, 0, 9));
  std::string shuffle_name = config.value("shuffle", "noshuffle");
  int shuffle = -1;
  for (int i = 0; i < 3; ++i)
    if (shuffle_name == kShuffleNames[i]) shuffle = i;
  if (shuffle < 0) return InvalidArgumentError("blosc: unknown shuffle \"" + shuffle_name + "\"");
  ASSIGN_OR_RETURN(int64_t typesize, IntField(config, "typesize", item_size, 1, BLOSC_MAX_TYPESIZE));
  ASSIGN_OR_RETURN(int64_t blocksize, IntField(config, "blocksize", 0, 0, BLOSC_MAX_BUFFERSIZE));
  return NewBloscCodec(cname, static_cast<int>(clevel), shuffle, static_cast<int>(typesize), blocksize);
}

Result<std::unique_ptr<BytesCodec>> BloscFromV2(const json& config, int item_size) {
  ASSIGN_OR_RETURN(int64_t shuffle, IntField(config, "shuffle", 1, -1, 2));
  if (shuffle == -1) shuffle = item_size == 1 ? 2 : 1;  // numcodecs AUTOSHUFFLE
  ASSIGN_OR_RETURN(int64_t clevel, IntField(config, "clevel", 5, 0, 9));
  ASSIGN_OR_RETURN(int64_t blocksize, IntField(config, "blocksize", 0, 0, BLOSC_MAX_BUFFERSIZE));
  return NewBloscCodec(config.value("cname", "lz4"), static_cast<int>(clevel), static_cast<int>(shuffle), item_size,
                       blocksize);
}

}  // namespace jigsaw
