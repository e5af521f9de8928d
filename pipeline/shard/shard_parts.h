// One jigsaw-shard store written by many processes: `jigsaw-shard run ... --part i/N` (job arrays, no MPI)
// or `mpirun -np N jigsaw-shard run ...`. The plan's time blocks (K = --time-per-shard steps, so that a shard
// is never split) are cut into N contiguous ranges; each part writes its blocks' chunks and then its
// manifest, jigsaw-parts/part-I-of-N.json: the plan fingerprint, its float64 partial moments per channel
// (count, mean, M2, min, max of the values and of the tendencies whose later time it holds, the pair that
// straddles its first time included), and the checksum record of what it wrote. The finish step (the last
// part to end, rank 0 under MPI, or `jigsaw-shard finish`) merges the manifests in part order (Chan's update:
// the result does not depend on which part ended first), checks every planned chunk, and writes the
// statistics, the checksum record and then the completion mark, last.
//
// Claims: a part first creates jigsaw-parts/part-I-of-N.claim with a conditional write (a file: link(2); S3:
// If-None-Match: *, which S3, MinIO and moto honour; no locks needed), holding a lease it renews while it
// runs. A second process claiming the same part is refused while the lease runs; a killed part's claim
// lapses (kPartLeaseSeconds), or at once on the host that held it when its process is gone, and its rerun
// takes it over and resumes.
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "pipeline/shard/moments.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {

struct ShardPart {
  int64_t index = 0, count = 1;  // 0-based index; written 1-based ("2/4" is index 1 of 4)
  bool whole() const { return count == 1; }
  std::string ToString() const { return std::to_string(index + 1) + "/" + std::to_string(count); }
};
// "i/N" with 1 <= i <= N.
Result<ShardPart> ParseShardPart(std::string_view text);
// The blocks [first, last) of `part` among `blocks` time blocks: contiguous, sizes differing by at most one.
std::pair<int64_t, int64_t> PartBlocks(int64_t blocks, const ShardPart& part);

inline constexpr const char* kPartsPrefix = "jigsaw-parts/";
inline constexpr double kPartLeaseSeconds = 120;
std::string PartManifestKey(const ShardPart& part);
std::string PartClaimKey(const ShardPart& part);

// A part's claim on the store, renewed on a thread of its own until Release() (or destruction).
class PartClaim {
 public:
  virtual ~PartClaim() = default;
  virtual Status Release() = 0;
};
// Refuses (kFailedPrecondition, naming the holder and when its lease ends) a part another process holds.
Result<std::unique_ptr<PartClaim>> ClaimPart(KvStore* store, const ShardPart& part, const std::string& fingerprint,
                                             double lease_seconds = kPartLeaseSeconds);

// Per-channel moments of values and tendencies, as a part keeps them and its manifest records them.
struct PartMoments {
  std::vector<Moments> value, tendency;
};
nlohmann::json MomentsToJson(const PartMoments& m);
Result<PartMoments> MomentsFromJson(const nlohmann::json& j, size_t channels);
// The statistics arrays' columns (kShardStatNames) from moments.
nlohmann::json ShardStatistics(const PartMoments& m);

// The parts of a store being written in parts: how many, which are done (their manifests, by index) and
// which claims are held. count == 0: no part has started (a store written whole).
struct PartsState {
  int64_t count = 0;
  std::map<int64_t, nlohmann::json> manifests;
  std::map<int64_t, nlohmann::json> claims;
  std::vector<int64_t> missing() const;
};
Result<PartsState> ReadPartsState(KvStore* store);
// "part 2 of 4 (2020-01-03T00:00:00 to 2020-01-04T18:00:00)" for each part not done, from the store's plan.
std::vector<std::string> DescribeMissingParts(const nlohmann::json& plan, const PartsState& state);

// Merges every part's manifest into the statistics, checks every planned chunk, and writes the statistics,
// the checksum record and the completion mark (last). Refuses a store whose parts are not all done, naming
// the missing ones and their times. Idempotent: two finishes at once write the same objects.
Status FinishShardParts(KvStore* store, std::ostream& log);

}  // namespace jigsaw
