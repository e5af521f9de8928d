// libFuzzer target: Zarr metadata documents (zarr.json, .zarray) from arbitrary bytes. Whatever parses
// must also encode and decode a chunk without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/zarr/metadata.h"

using namespace jigsaw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = ParseJson(text, "fuzz");
  if (!j.ok()) return 0;
  for (int v : {2, 3}) {
    auto m = v == 3 ? ParseArrayMetadataV3(*j) : ParseArrayMetadataV2(*j, json::object());
    if (!m.ok()) continue;
    if (m->chunk_layout().num_bytes() > (1 << 20)) continue;
    std::string chunk(m->chunk_layout().num_bytes(), '\x5a');
    auto enc = m->codecs->Encode(chunk);
    if (!enc.ok()) continue;
    std::string back(chunk.size(), '\0');
    if (!m->codecs->Decode(*enc, back).ok() || back != chunk) __builtin_trap();  // round trip must hold
    (void)ArrayMetadataToV3(*m);
  }
  return 0;
}
