// What the save and read halves of checkpoints share (docs/formats.md, "Checkpoints"): the rank file's
// name and alignment, the checksum blocks, tile ownership, the manifest's text and tile records. Internal to
// storage/checkpoint/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage/checkpoint/manifest.h"

namespace jigsaw::checkpoint_internal {

inline constexpr int64_t kAlign = 4096;     // every tile starts at a multiple of this in its rank file
inline constexpr int64_t kBlock = 1 << 20;  // a crc32c per block of a tile

std::string RankFile(int64_t rank);  // "rank-00003.bin"
int64_t Volume(const std::vector<int64_t>& shape);
std::vector<uint32_t> BlockCrcs(std::string_view bytes);
// Whether `rank` writes its tile of `t` (the lowest of the ranks holding a replicated tile).
bool Owns(const TensorSpec& t, const Mesh& mesh, int64_t rank);
Result<std::string> ReadText(KvStore* root, const std::string& key);  // kNotFound naming the key

// The manifest's text, carrying a crc32c of itself (computed with that field absent).
std::string ManifestText(const Manifest& m);
uint32_t ManifestChecksum(nlohmann::json j);

// A tile record as a rank sends it to rank 0 (with the index of its tensor), and back.
nlohmann::json TileToJson(size_t tensor, const TileRecord& t);
TileRecord TileFromJson(const nlohmann::json& j);
// kDataLoss unless the tiles of `t` cover every element exactly once.
Status CheckCoverage(const TensorRecord& t);

}  // namespace jigsaw::checkpoint_internal
