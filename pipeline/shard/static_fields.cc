#include "pipeline/shard/static_fields.h"

#include <cstring>

#include "pipeline/shard/moments.h"
#include "pipeline/shard/shard_store.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"

namespace jigsaw {

Status WriteStaticFields(const ShardPlan& p, const std::vector<std::unique_ptr<Source>>& sources, KvStore* out) {
  if (p.statics.empty()) return OkStatus();
  const int64_t S = p.num_static(), plane = p.nlat() * p.nlon();
  std::vector<float> values(S * plane);
  std::vector<std::string> names;
  for (int64_t s = 0; s < S; ++s) {
    const auto& field = p.statics[s];
    const Source& src = *sources[field.source];
    // Full source planes; --lat-crop keeps the northern rows, as for `data`.
    std::vector<float> full(src.grid().latitude.size() * p.nlon());
    RETURN_IF_ERROR(src.ReadStatic(field.name, full.data()).Annotate("static field " + field.name));
    std::memcpy(values.data() + s * plane, full.data(), plane * sizeof(float));
    names.push_back(field.name);
  }
  const int format = p.options.zarr_format;
  auto tile = p.tile_shape();
  ArraySpec spec;
  spec.zarr_format = format;
  spec.shape = {S, p.nlat(), p.nlon()};
  spec.chunks = {SplitLength(S, p.tiles.ch), tile[1], tile[2]};
  spec.dtype = DataTypeFromName("float32").value();
  spec.fill_value = "NaN";
  spec.codec = p.options.codec;
  spec.crc32c = format == 3;
  spec.dimension_names = {"static_channel", "latitude", "longitude"};
  spec.attributes = {{"channels", names},
                     {"long_name", "time-independent fields: one chunk per rank (its channel group of them)"}};
  ASSIGN_OR_RETURN(ArrayMetadata meta, MakeArrayMetadata(spec));
  ASSIGN_OR_RETURN(auto array, Array::Create(out, "static", std::move(meta)));
  RETURN_IF_ERROR(array->Write(array->full_box(),
                               std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * 4)));
  RETURN_IF_ERROR(WriteTextCoordinateArray(out, format, "static_channel", names, {{"long_name", "static field"}}));
  std::vector<double> stats[4];
  for (int64_t s = 0; s < S; ++s) {
    const Moments m = Moments::Of(values.data() + s * plane, plane);
    stats[0].push_back(m.n ? m.mean : NAN);
    stats[1].push_back(m.population_std());
    stats[2].push_back(m.n ? m.min : NAN);
    stats[3].push_back(m.n ? m.max : NAN);
  }
  for (int i = 0; i < 4; ++i)
    RETURN_IF_ERROR(WriteStatisticsArray(out, format, kStaticStatNames[i], "static_channel", stats[i]));
  return OkStatus();
}

Result<std::vector<float>> ReadStaticBox(KvStore* store, int64_t num_static, int64_t height, int64_t width,
                                         const Box& box, bool normalize) {
  auto a = Array::Open(store, "static");
  if (!a.ok()) return DataLossError(store->url() + ": no \"static\" array: " + a.status().message());
  (*a)->RequireEveryChunk(true);
  const ArrayMetadata& m = (*a)->metadata();
  if (m.dtype.name != "float32" || m.shape != std::vector<int64_t>{num_static, height, width}) {
    return DataLossError(store->url() + ": static is not float32 [" + std::to_string(num_static) +
                         " fields, lat, lon]");
  }
  std::vector<float> out(box.num_elements());
  RETURN_IF_ERROR((*a)->Read(box, std::span<char>(reinterpret_cast<char*>(out.data()), out.size() * 4)));
  if (!normalize) return out;
  std::vector<double> mean(num_static), stdev(num_static);
  for (auto [name, v] : {std::pair{"static_mean", &mean}, std::pair{"static_std", &stdev}}) {
    ASSIGN_OR_RETURN(auto st, Array::Open(store, name));
    if (st->metadata().shape != std::vector<int64_t>{num_static} || st->metadata().dtype.name != "float64")
      return DataLossError(store->url() + ": " + name + " is not float64 [" + std::to_string(num_static) + "]");
    RETURN_IF_ERROR(st->Read(st->full_box(), std::span<char>(reinterpret_cast<char*>(v->data()), num_static * 8)));
  }
  const int64_t plane = box.shape[1] * box.shape[2];
  for (int64_t c = 0; c < box.shape[0]; ++c) {
    const int64_t s = box.origin[0] + c;
    const double inv = stdev[s] > 0 ? 1.0 / stdev[s] : 1.0;
    float* x = out.data() + c * plane;
    for (int64_t i = 0; i < plane; ++i) x[i] = static_cast<float>((x[i] - mean[s]) * inv);
  }
  return out;
}

}  // namespace jigsaw
