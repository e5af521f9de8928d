// The checkpoint benchmark behind `jigsaw-bench ckpt`: a synthetic checkpoint (16 float32 tensors of
// incompressible noise) saved with fsync, loaded cold and warm (mapped and read), resharded, and the plain
// copy of its files that bounds all of it, with peak memory. bench/bench_ckpt.py runs it beside the peers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "parallel/mesh.h"

namespace jigsaw {

struct CheckpointBenchOptions {
  std::string dir;  // scratch directory, replaced
  double gb = 2;
  Mesh mesh;  // saved on
  Mesh reshard_to;
  bool buffered = false;  // rank files through the page cache (default: past it)
};

// Seconds and GB/s of each part, as JSON (keys as bench_ckpt.py reads them).
Result<nlohmann::json> MeasureCheckpoint(const CheckpointBenchOptions& o);

}  // namespace jigsaw
