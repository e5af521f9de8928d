// Sharded checkpoints (docs/formats.md, "Checkpoints"):
//   ROOT/LATEST                       name of the newest committed step (replaced atomically)
//   ROOT/step-00001000/manifest.json  mesh, tensors (dtype, shape, partition, tiles), step, metadata
//   ROOT/step-00001000/rank-00003.bin the tiles rank 3 owns, each at a 4 KiB-aligned offset
// The manifest is written last: a step directory without one is garbage (removed by the next save).
// Each tile carries crc32c checksums of its 1 MiB blocks, so that partial reads are checked too.
//
// Tensors are split on a mesh by partition specs (parallel/mesh.h); a replicated tile is written once, by
// the lowest rank that holds it.
#pragma once

#include "storage/checkpoint/async_save.h"
#include "storage/checkpoint/export.h"
#include "storage/checkpoint/manifest.h"
#include "storage/checkpoint/read.h"
#include "storage/checkpoint/reshard.h"
#include "storage/checkpoint/save.h"
