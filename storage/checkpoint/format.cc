#include "storage/checkpoint/format.h"

#include <cstdio>

#include "storage/codec/crc32c.h"

namespace jigsaw::checkpoint_internal {

std::string RankFile(int64_t rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank-%05lld.bin", static_cast<long long>(rank));
  return buf;
}

int64_t Volume(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::vector<uint32_t> BlockCrcs(std::string_view bytes) {
  std::vector<uint32_t> out;
  for (size_t b = 0; b < bytes.size(); b += kBlock) out.push_back(Crc32c(bytes.substr(b, kBlock)));
  return out;
}

bool Owns(const TensorSpec& t, const Mesh& mesh, int64_t rank) { return OwnsTile(t.partition, mesh, rank); }

Result<std::string> ReadText(KvStore* root, const std::string& key) {
  ASSIGN_OR_RETURN(ReadResult r, root->Read(key));
  if (r.missing) return NotFoundError(root->url() + ": no " + key);
  return r.value;
}

// The manifest carries a crc32c of its own text (computed with the field absent), so that a flipped byte
// that leaves the JSON valid (a digit of an offset, say) is still caught.
uint32_t ManifestChecksum(nlohmann::json j) {
  j.erase("manifest_crc32c");
  return Crc32c(j.dump(1));
}

std::string ManifestText(const Manifest& m) {
  nlohmann::json j = m.ToJson();
  j["manifest_crc32c"] = ManifestChecksum(j);
  return j.dump(1);
}

nlohmann::json TileToJson(size_t tensor, const TileRecord& t) {
  return {{"tensor", tensor},   {"rank", t.rank},     {"origin", t.box.origin}, {"shape", t.box.shape},
          {"offset", t.offset}, {"nbytes", t.nbytes}, {"crc32c", t.crc32c},     {"block_crc32c", t.block_crc32c}};
}

TileRecord TileFromJson(const nlohmann::json& j) {
  TileRecord t;
  t.rank = j["rank"];
  t.box.origin = j["origin"].get<std::vector<int64_t>>();
  t.box.shape = j["shape"].get<std::vector<int64_t>>();
  t.offset = j["offset"];
  t.nbytes = j["nbytes"];
  t.crc32c = j["crc32c"];
  t.block_crc32c = j["block_crc32c"].get<std::vector<uint32_t>>();
  return t;
}

// Rank 0 decides; every rank returns its verdict.
// Every element of the tensor in exactly one tile: no overlaps, and the volumes add up to the tensor's.
Status CheckCoverage(const TensorRecord& t) {
  int64_t covered = 0;
  for (size_t i = 0; i < t.tiles.size(); ++i) {
    covered += Volume(t.tiles[i].box.shape);
    for (size_t k = 0; k < i; ++k) {
      if (Overlap(t.tiles[i].box, t.tiles[k].box)) return DataLossError("tensor " + t.spec.name + ": tiles overlap");
    }
  }
  if (covered != Volume(t.spec.shape))
    return DataLossError("tensor " + t.spec.name + ": tiles do not cover the tensor");
  return OkStatus();
}

}  // namespace jigsaw::checkpoint_internal
