// Where a rank sits in a Jigsaw job (docs/parallelism.md): `replicas` data-parallel copies of
// a model-parallel group of s x s ranks. World rank = replica s^2 + i s + j; rank (i, j) of a group holds
// block (i, j) of every matrix: rows part i, columns part j. The communicators along the mesh row (the s
// ranks (i, *)), the mesh column ((*, j)), the group and the data-parallel peers (same (i, j), every
// replica) are split from the world once, here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "parallel/communicator.h"
#include "parallel/mesh.h"
#include "train/backend.h"

namespace jigsaw::train {

struct MeshPosition {
  int64_t s = 1;  // the group is s x s
  int64_t i = 0, j = 0;
  int64_t replicas = 1, replica = 0;
  std::string ToString() const;  // "rank (i, j) of a 2x2 mesh, replica 0 of 1"
};

struct MeshComms {
  MeshPosition pos;
  std::unique_ptr<TensorCommunicator> row, col, group, data;
};

// A Jigsaw mesh as the tools take it (--mesh domain=s,tensor=s, or tensor=s,domain=s: the same mesh, always
// returned as domain=s,tensor=s) and its side s: refused unless it names exactly the axes domain and tensor
// and they are equal (every operand is cut s x s).
struct JigsawMesh {
  Mesh mesh;
  int64_t s = 1;
};
Result<JigsawMesh> ParseJigsawMesh(std::string_view text);

// The mesh on which a run's parameters are stored (checkpoints): the mesh rows i = a LON + b and columns
// j = c LON + d, each as (part row, part column) of the domain grid LAT x LON, so that a token dimension
// kept by patch position splits into boxes (docs/models.md): axes domain_lat=LAT, domain_lon=LON, tensor_lat=LAT,
// tensor_lon=LON, rank i s + j as on the run's mesh. A dimension the run splits along the mesh rows is
// partitioned by "domain_lat*domain_lon", along the columns by "tensor_lat*tensor_lon"; patch rows and
// columns of tokens by one axis each.
struct DomainGrid;  // train/config.h
Mesh StoredMesh(const DomainGrid& grid);
inline constexpr const char* kRowsAxes = "domain_lat*domain_lon";
inline constexpr const char* kColumnsAxes = "tensor_lat*tensor_lon";

// Collective over `world`: world->size() must be replicas * s^2 (refused, naming the numbers, otherwise).
Result<MeshComms> SplitMesh(TensorCommunicator* world, int64_t s);
// SplitMesh for tensors on `device`: on GPUs, in a job of several ranks, the communicators are NCCL ones
// (NewNcclCommunicator over a copy of `world`, which keeps the host buffers and control calls; the
// data-parallel one a communicator of its own, so that its gradient sums run beside the mesh's exchanges);
// otherwise `world`'s own. The backend's GPU must be current (NewRankBackend first).
Result<MeshComms> SplitMeshOn(Device device, TensorCommunicator* world, int64_t s);

}  // namespace jigsaw::train
