// The time-independent fields of a jigsaw-shard store (`--static`): land-sea mask, orography, soil type.
//   static                 float32 [static_channel, latitude, longitude], one chunk per tile (the channel
//                          groups split by the same rule as `data`'s), fill NaN
//   static_channel         the field names as text
//   static_mean, static_std, static_min, static_max   float64 [static_channel], NaN ignored
// Written by every run of a plan with static fields (they are small), before the store is marked complete.
#pragma once

#include <memory>
#include <vector>

#include "pipeline/shard/plan.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {

inline constexpr const char* kStaticStatNames[] = {"static_mean", "static_std", "static_min", "static_max"};

Status WriteStaticFields(const ShardPlan& plan, const std::vector<std::unique_ptr<Source>>& sources, KvStore* out);

}  // namespace jigsaw
