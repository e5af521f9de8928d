// The time-independent fields of a jigsaw-shard store (`--static`): land-sea mask, orography, soil type.
//   static                 float32 [static_channel, latitude, longitude], one chunk per tile (the channel
//                          groups split by the same rule as `data`'s), fill NaN
//   static_channel         the field names as text
//   static_mean, static_std, static_min, static_max   float64 [static_channel], NaN ignored
// Written by every run of a plan with static fields (they are small), before the store is marked complete.
#pragma once

#include <memory>
#include <vector>

#include "base/box.h"
#include "pipeline/shard/plan.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {

inline constexpr const char* kStaticStatNames[] = {"static_mean", "static_std", "static_min", "static_max"};

Status WriteStaticFields(const ShardPlan& plan, const std::vector<std::unique_ptr<Source>>& sources, KvStore* out);

// Reads the box [static channel, lat, lon] of the `static` array of a store with `num_static` fields on a
// height x width grid (float32, C order), normalised with static_mean / static_std when `normalize` is set
// (a field of std 0 becomes x - mean): a rank's static tile, for the loader and the trainer alike.
Result<std::vector<float>> ReadStaticBox(KvStore* store, int64_t num_static, int64_t height, int64_t width,
                                         const Box& box, bool normalize);

}  // namespace jigsaw
