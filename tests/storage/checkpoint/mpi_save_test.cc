// Under mpirun -np 4: each process saves its own rank of a domain=2,tensor=2 checkpoint (only its tiles in
// memory), then the step is loaded on 1, 2 and 8 ranks (each process taking some of the target ranks) and
// every value compared with the generator; ranks that disagree fail together; an asynchronous collective
// save commits the same values. usage: mpirun -np 4 mpi_save_test ROOT
#include <mpi.h>

#include <cstdio>
#include <cstring>

#include "storage/checkpoint/checkpoint.h"

using namespace jigsaw;

namespace {

float Value(const std::string& tensor, int64_t i, int64_t j, int64_t cols) {
  return static_cast<float>(tensor.size()) * 1000.0f + static_cast<float>(i * cols + j) * 0.5f;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "mpi_save_test: %s\n", what.c_str());
  MPI_Abort(MPI_COMM_WORLD, 1);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc != 2) return Fail("usage: mpi_save_test ROOT");
  auto comm = NewMpiCommunicator();
  if (!comm.ok()) return Fail(comm.status().ToString());
  const int64_t me = (*comm)->rank();
  auto mesh = Mesh::Parse("domain=2,tensor=2").value();
  if ((*comm)->size() != mesh.size()) return Fail("run with 4 processes");
  std::vector<TensorSpec> specs = {{"w", DataTypeFromName("float32").value(), {37, 22}, {"domain", "tensor"}},
                                   {"bias", DataTypeFromName("float32").value(), {22}, {"tensor"}},
                                   {"scale", DataTypeFromName("float32").value(), {3, 3}, {}}};
  auto root = OpenKvStore(argv[1]).value();
  TileProvider provider = [&](int64_t rank, const TensorSpec& t, const Box& box) -> Result<std::string> {
    if (rank != me) return InternalError("asked for another rank's tile");
    const int64_t cols = t.shape.size() > 1 ? t.shape[1] : 1;
    std::string out(box.num_elements() * 4, '\0');
    int64_t k = 0;
    const int64_t rows = t.shape.size() > 1 ? box.shape[0] : 1;
    const int64_t width = t.shape.size() > 1 ? box.shape[1] : box.shape[0];
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < width; ++j, ++k) {
        const int64_t gi = t.shape.size() > 1 ? box.origin[0] + i : 0;
        const int64_t gj = (t.shape.size() > 1 ? box.origin[1] : box.origin[0]) + j;
        float v = Value(t.name, gi, gj, cols);
        std::memcpy(&out[k * 4], &v, 4);
      }
    return out;
  };
  Status s = SaveCheckpoint(root.get(), 42, mesh, specs, provider, {.sync = true, .metadata = {{"optimizer", "adam"}}},
                            comm->get());
  if (!s.ok()) return Fail("save: " + s.ToString());
  auto m = ReadManifest(root.get());
  if (!m.ok()) return Fail("manifest: " + m.status().ToString());
  int64_t checked = 0;
  for (const char* target : {"domain=1", "domain=2", "domain=4,tensor=2"}) {
    auto tm = Mesh::Parse(target).value();
    for (int64_t r = me; r < tm.size(); r += mesh.size()) {  // this process loads some of the target ranks
      for (auto spec : specs) {
        if (!tm.AxisSize("tensor")) {  // a mesh without the tensor axis: split w by rows only
          spec.partition = spec.name == "w" ? PartitionSpec{"domain", std::nullopt} : PartitionSpec{};
        }
        auto box = TileOf(spec, tm, r);
        if (!box.ok()) return Fail(box.status().ToString());
        auto bytes = ReadTensorBox(root.get(), StepDirectory(42), *m, *m->Find(spec.name), *box);
        if (!bytes.ok()) return Fail(bytes.status().ToString());
        const int64_t cols = spec.shape.size() > 1 ? spec.shape[1] : 1;
        for (int64_t k = 0; k < box->num_elements(); ++k) {
          int64_t gi = 0, gj;
          if (spec.shape.size() > 1) {
            gi = box->origin[0] + k / box->shape[1];
            gj = box->origin[1] + k % box->shape[1];
          } else {
            gj = box->origin[0] + k;
          }
          float v;
          std::memcpy(&v, bytes->data() + k * 4, 4);
          if (v != Value(spec.name, gi, gj, cols)) return Fail("wrong value in " + spec.name + " on " + target);
          ++checked;
        }
      }
    }
  }
  // Ranks that disagree on what they save: every rank fails (none waits forever), rank 0 names the odd one
  // out, and LATEST still names step 42.
  auto odd = specs;
  if (me == 2) odd[0].shape = {38, 22};
  s = SaveCheckpoint(root.get(), 43, mesh, odd, provider, {.sync = false}, comm->get());
  if (s.ok()) return Fail("a save whose ranks disagree succeeded");
  if (me == 0 && s.message().find("rank 2 saves tensor [\"w\",\"float32\",[38,22]") == std::string::npos) {
    return Fail("unexpected message: " + s.ToString());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  auto latest = LatestStep(root.get());
  if (!latest.ok() || *latest != StepDirectory(42)) return Fail("LATEST moved after a failed save");
  // Ranks that disagree on the step or on the mesh: refused on every rank before anything is written.
  {
    const int64_t step = me == 3 ? 46 : 45;
    s = SaveCheckpoint(root.get(), step, mesh, specs, provider, {.sync = false}, comm->get());
    if (s.ok()) return Fail("a save whose ranks disagree on the step succeeded");
    auto other = Mesh::Parse(me == 1 ? "tensor=2,domain=2" : "domain=2,tensor=2").value();
    s = SaveCheckpoint(root.get(), 47, other, specs, provider, {.sync = false}, comm->get());
    if (s.ok()) return Fail("a save whose ranks disagree on the mesh succeeded");
    MPI_Barrier(MPI_COMM_WORLD);
    for (const char* dir : {"step-00000043/", "step-00000045/", "step-00000046/", "step-00000047/"}) {
      auto left = root->List(dir);
      if (!left.ok() || !left->empty()) return Fail(std::string("a refused save left ") + dir);
    }
  }
  // An asynchronous collective save: Start copies this rank's tiles and returns, Wait commits on every rank.
  {
    AsyncCheckpointSaver saver;
    s = saver.Start(root.get(), 44, mesh, specs, provider, {.sync = true}, comm->get());
    if (!s.ok()) return Fail("async start: " + s.ToString());
    s = saver.Wait();
    if (!s.ok()) return Fail("async save: " + s.ToString());
    auto m44 = ReadManifest(root.get());
    if (!m44.ok() || m44->step != 44) return Fail("LATEST does not name the async save");
    for (const auto& spec : specs) {
      const Box whole{std::vector<int64_t>(spec.shape.size(), 0), spec.shape};
      auto a = ReadTensorBox(root.get(), StepDirectory(42), *m, *m->Find(spec.name), whole);
      auto b = ReadTensorBox(root.get(), StepDirectory(44), *m44, *m44->Find(spec.name), whole);
      if (!a.ok() || !b.ok() || *a != *b) return Fail("the async save differs from the blocking one: " + spec.name);
    }
  }
  std::printf("rank %lld: saved its tiles; %lld values checked on meshes of 1, 2 and 8 ranks\n",
              static_cast<long long>(me), static_cast<long long>(checked));
  MPI_Finalize();
  return 0;
}
