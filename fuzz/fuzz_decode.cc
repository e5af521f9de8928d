// libFuzzer target: every decoder on arbitrary bytes. The first byte picks a codec chain; the rest is the
// encoded chunk. Decoding must fail cleanly or fill exactly the chunk, never read or write out of bounds;
// what decodes must encode again and decode to the same values. Seeds (seeds/fuzz_decode/chain_N) are valid
// chunks of chain N, written by `fuzz_decode --write-seeds DIR`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "storage/codec/codec.h"

using namespace jigsaw;

namespace {

const std::vector<std::shared_ptr<const CodecChain>>& Chains() {
  static const auto* chains = [] {
    auto* v = new std::vector<std::shared_ptr<const CodecChain>>();
    ChunkLayout layout{{16, 16}, 4, std::string(4, '\0')};
    const char* lists[] = {
        R"([{"name":"bytes"},{"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":4}}])",
        R"([{"name":"bytes"},{"name":"blosc","configuration":{"cname":"zstd","clevel":3,"shuffle":"bitshuffle","typesize":4}}])",
        R"([{"name":"bytes"},{"name":"zstd","configuration":{"level":1}}])",
        R"([{"name":"bytes"},{"name":"gzip","configuration":{"level":1}}])",
        R"([{"name":"bytes"},{"name":"numcodecs.zlib","configuration":{"level":1}}])",
        R"([{"name":"bytes"},{"name":"crc32c"}])",
        R"([{"name":"transpose","configuration":{"order":[1,0]}},{"name":"bytes","configuration":{"endian":"big"}}])",
        R"([{"name":"sharding_indexed","configuration":{"chunk_shape":[4,8],"codecs":[{"name":"bytes"},{"name":"zstd"}],
            "index_codecs":[{"name":"bytes"},{"name":"crc32c"}],"index_location":"end"}}])",
        R"([{"name":"sharding_indexed","configuration":{"chunk_shape":[8,8],"codecs":[{"name":"bytes"}],
            "index_codecs":[{"name":"bytes"}],"index_location":"start"}}])",
    };
    for (const char* l : lists) v->push_back(CodecChain::FromV3(json::parse(l), layout).value());
    return v;
  }();
  return *chains;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& chains = Chains();
  const auto& chain = chains[data[0] % chains.size()];
  std::string_view encoded(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string out(chain->layout().num_bytes(), '\0');
  if (chain->Decode(encoded, out).ok()) {
    auto again = chain->Encode(out);
    if (!again.ok()) __builtin_trap();  // what decodes must encode
    std::string back(out.size(), '\0');
    if (!chain->Decode(*again, back).ok() || back != out) __builtin_trap();  // and round-trip
  }
  // Each bytes codec on its own, with a small bound.
  for (const auto& c : chain->bytes_codecs()) (void)c->Decode(encoded, 4096);
  return 0;
}

// `fuzz_decode --write-seeds DIR`: one valid chunk per chain (a ramp of floats), prefixed by its chain byte.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (*argc == 3 && std::strcmp((*argv)[1], "--write-seeds") == 0) {
    const auto& chains = Chains();
    for (size_t i = 0; i < chains.size(); ++i) {
      std::string values(chains[i]->layout().num_bytes(), '\0');
      for (size_t k = 0; k < values.size() / 4; ++k) {
        const float f = static_cast<float>(k % 37) * 0.25f;
        std::memcpy(&values[k * 4], &f, 4);
      }
      std::ofstream(std::string((*argv)[2]) + "/chain_" + std::to_string(i), std::ios::binary)
          << static_cast<char>(i) << chains[i]->Encode(values).value();
    }
    std::exit(0);
  }
  return 0;
}
