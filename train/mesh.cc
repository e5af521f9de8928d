#include "train/mesh.h"

#include "train/config.h"

namespace jigsaw::train {

std::string MeshPosition::ToString() const {
  return "rank (" + std::to_string(i) + ", " + std::to_string(j) + ") of a " + std::to_string(s) + "x" +
         std::to_string(s) + " mesh, replica " + std::to_string(replica) + " of " + std::to_string(replicas);
}

Result<JigsawMesh> ParseJigsawMesh(std::string_view text) {
  ASSIGN_OR_RETURN(Mesh mesh, Mesh::Parse(text));
  const int64_t domain = mesh.AxisSize("domain"), tensor = mesh.AxisSize("tensor");
  if (mesh.axes.size() != 2 || domain == 0 || tensor == 0) {
    return InvalidArgumentError("--mesh " + std::string(text) +
                                ": a Jigsaw mesh names the axes domain and tensor (e.g. domain=2,tensor=2)");
  }
  if (domain < 1 || tensor < 1 || domain != tensor) {
    return InvalidArgumentError("a Jigsaw mesh is square: domain=" + std::to_string(domain) +
                                ",tensor=" + std::to_string(tensor) +
                                " is not (every weight and activation is cut into s x s blocks)");
  }
  // Either order names the same mesh: the rank order is the run's (i s + j), never the text's.
  return JigsawMesh{Mesh{{{"domain", domain}, {"tensor", tensor}}}, domain};
}

Mesh StoredMesh(const DomainGrid& g) {
  return Mesh{{{"domain_lat", g.lat}, {"domain_lon", g.lon}, {"tensor_lat", g.lat}, {"tensor_lon", g.lon}}};
}

namespace {

// SplitMesh, the data-parallel communicator split from `data_from` (another view of the same ranks).
Result<MeshComms> SplitAxes(TensorCommunicator* world, int64_t s, TensorCommunicator* data_from) {
  const int64_t n = world->size();
  if (s < 1 || n % (s * s) != 0) {
    return InvalidArgumentError("a job of " + std::to_string(n) + " ranks cannot hold whole " + std::to_string(s) +
                                "x" + std::to_string(s) + " meshes (" + std::to_string(s * s) + " ranks each)");
  }
  MeshComms m;
  const int64_t r = world->rank(), g = s * s;
  m.pos = {s, (r % g) / s, r % s, n / g, r / g};
  const auto& p = m.pos;
  // Colours are disjoint per split; the key orders ranks by their index along the axis.
  ASSIGN_OR_RETURN(m.row, world->Split(p.replica * s + p.i, p.j));
  ASSIGN_OR_RETURN(m.col, world->Split(p.replica * s + p.j, p.i));
  ASSIGN_OR_RETURN(m.group, world->Split(p.replica, p.i * s + p.j));
  ASSIGN_OR_RETURN(m.data, data_from->Split(p.i * s + p.j, p.replica));
  return m;
}

}  // namespace

Result<MeshComms> SplitMesh(TensorCommunicator* world, int64_t s) { return SplitAxes(world, s, world); }

Result<MeshComms> SplitMeshOn(Device device, TensorCommunicator* world, int64_t s) {
  if (device != Device::kCuda || world->size() == 1) return SplitMesh(world, s);
  ASSIGN_OR_RETURN(auto control, world->Split(0, world->rank()));
  ASSIGN_OR_RETURN(auto nccl, NewNcclCommunicator(std::move(control)));
  // The data-parallel peers split from `world`, then an NCCL communicator of their own (a stream of its own:
  // gradient sums beside the mesh's exchanges).
  ASSIGN_OR_RETURN(MeshComms m, SplitAxes(nccl.get(), s, world));
  ASSIGN_OR_RETURN(m.data, NewNcclCommunicator(std::move(m.data)));
  return m;
}

}  // namespace jigsaw::train
