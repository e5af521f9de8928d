// Throughput measurements behind `jigsaw-bench` (storage side): reading every chunk of an array, the
// codec-only ceiling for the same chunks, and per-codec encode/decode speed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "storage/kvstore/kvstore.h"
#include "storage/zarr/dtype.h"

namespace jigsaw {

struct ReadThroughput {
  int64_t chunks = 0;
  int64_t stored_bytes = 0;     // encoded bytes fetched
  int64_t decoded_bytes = 0;    // bytes delivered
  std::vector<double> seconds;  // one per repeat
  double median_seconds() const;
};

struct ReadBenchOptions {
  int repeats = 3;
  // Fetch the encoded chunks once beforehand and time decoding alone: the codec-only ceiling.
  bool from_memory = false;
  // A new output buffer for each repeat, first touched while decoding (as numpy.empty in the peers);
  // otherwise one buffer reused across repeats, as a loader reuses its batch buffers (repeats > 1 then
  // measure warm buffers; the median discards the first, cold one).
  bool fresh_output = false;
  // Only the chunks whose grid index it accepts (all when empty): one rank's tiles, say.
  std::function<bool(const std::vector<int64_t>& chunk_index)> keep;
};

// Reads and decodes every stored chunk (that options.keep accepts) of the array at `path`, in parallel, each into its
// own slot of one output buffer (as a loader delivers tiles).
Result<ReadThroughput> MeasureChunkReads(KvStore* store, const std::string& path, const ReadBenchOptions& options);

struct CodecThroughput {
  std::string codec;
  double encode_mb_s = 0, decode_mb_s = 0, ratio = 0;  // MB = 1e6 bytes of decoded data
};

// Encodes and decodes `data` (elements of `dtype`) with each named codec on one thread; medians of
// `repeats` runs.
Result<std::vector<CodecThroughput>> MeasureCodecs(std::string_view data, const DataType& dtype,
                                                   const std::vector<std::string>& codecs, int repeats);

}  // namespace jigsaw
