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

}  // namespace jigsaw
