#include "jobs/store_facts.h"

#include "pipeline/shard/shard_store.h"
#include "pipeline/shard/static_fields.h"
#include "storage/kvstore/checksum_record.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"

namespace jigsaw::train {
namespace {

template <typename T>
Result<std::vector<T>> ReadVector(KvStore* store, const std::string& name, const std::string& dtype, int64_t n) {
  auto a = Array::Open(store, name);
  if (!a.ok()) return FailedPreconditionError("the store has no array \"" + name + "\"");
  const auto& m = (*a)->metadata();
  if (m.shape.size() != 1 || (n >= 0 && m.shape[0] != n) || m.dtype.name != dtype) {
    return InvalidArgumentError("the store's " + name + " array is not " + dtype + " [" +
                                (n >= 0 ? std::to_string(n) : "n") + "]");
  }
  return ReadWhole1D<T>(**a);
}

}  // namespace

Result<StoreFacts> ReadStoreFacts(const std::string& url) {
  ASSIGN_OR_RETURN(auto store, OpenKvStore(url));
  ASSIGN_OR_RETURN(ShardStoreInfo info, ReadShardStoreInfo(store.get()));
  if (!info.complete) return FailedPreconditionError("the store is not complete (jigsaw-shard run did not finish)");
  StoreFacts f;
  f.tiles = info.tiles;
  f.fingerprint = info.attributes.value("plan_fingerprint", std::string());
  f.channels = info.channels;
  f.height = info.height;
  f.width = info.width;
  f.step_seconds = info.step_seconds;
  const int64_t c = static_cast<int64_t>(f.channels.size());
  auto mean = ReadVector<double>(store.get(), "mean", "float64", c);
  auto std = ReadVector<double>(store.get(), "std", "float64", c);
  if (!mean.ok() || !std.ok()) {
    return FailedPreconditionError("the store has no normalisation statistics (mean and std per channel): " +
                                   (mean.ok() ? std.status() : mean.status()).message());
  }
  f.mean = std::move(*mean);
  f.std = std::move(*std);
  ASSIGN_OR_RETURN(f.latitudes, ReadVector<double>(store.get(), "latitude", "float64", f.height));
  ASSIGN_OR_RETURN(f.longitudes, ReadVector<double>(store.get(), "longitude", "float64", f.width));
  ASSIGN_OR_RETURN(f.times, ReadVector<int64_t>(store.get(), "time", "int64", -1));
  f.static_channels = info.static_channels;
  if (!f.static_channels.empty()) {
    const int64_t n = static_cast<int64_t>(f.static_channels.size());
    ASSIGN_OR_RETURN(f.static_mean, ReadVector<double>(store.get(), "static_mean", "float64", n));
    ASSIGN_OR_RETURN(f.static_std, ReadVector<double>(store.get(), "static_std", "float64", n));
  }
  f.members = info.members;
  return f;
}

Status RequireSingleMember(const StoreFacts& f, const std::string& tool) {
  if (f.members.empty()) return OkStatus();
  return UnimplementedError("the store holds " + std::to_string(f.members.size()) +
                            " ensemble members (jigsaw-shard --members): " + tool +
                            " reads single-member stores (shard one with --member N); jigsaw-train, the loader and "
                            "jigsaw.torch read ensemble stores");
}

Status SetStaticInput(const std::string& url, const StoreFacts& facts, WeatherMixer* model) {
  if (model->config().static_channels == 0) return OkStatus();
  const TileShape& t = model->static_tile();
  ASSIGN_OR_RETURN(auto store, OpenCheckedKvStore(url));  // every chunk checked against the checksum record
  auto tile = ReadStaticBox(store.get(), static_cast<int64_t>(facts.static_channels.size()), facts.height, facts.width,
                            Box{{t.channel0, t.row0, t.col0}, {t.channels, t.height, t.width}},
                            /*normalize=*/true);
  if (!tile.ok()) return tile.status().Annotate("static fields");
  return model->SetStatic(tile->data());
}

}  // namespace jigsaw::train
