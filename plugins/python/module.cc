// The `jigsaw._jigsaw` extension: Loader batches as NumPy arrays that own their buffer (no copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <tbb/parallel_for.h>

#include <cstring>
#include <optional>

#include "pipeline/loader/loader.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/zarr/metadata.h"
#include "base/first_error.h"

namespace py = pybind11;
using namespace jigsaw;

namespace {

[[noreturn]] void Throw(const Status& s) {
  if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kOutOfRange)
    throw py::value_error(s.message());
  if (s.code() == StatusCode::kNotFound) throw py::key_error(s.message());
  throw std::runtime_error(s.message());
}

template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) Throw(r.status());
  return std::move(r).value();
}

// A partition spec from Python: None, or a list whose entries are None, an axis name, or a list of axis
// names splitting one dimension together (as the manifests write them); parsed by the one parser.
PartitionSpec SpecFromPython(const py::handle& spec) {
  if (spec.is_none()) return {};
  nlohmann::json j = nlohmann::json::array();
  for (const auto& e : spec) {
    if (e.is_none()) {
      j.push_back(nullptr);
    } else if (py::isinstance<py::str>(e)) {
      j.push_back(e.cast<std::string>());
    } else {
      nlohmann::json axes = nlohmann::json::array();
      for (const auto& a : e) axes.push_back(py::str(a).cast<std::string>());
      j.push_back(axes);
    }
  }
  return Unwrap(ParsePartitionSpec(j));
}

// C-order strides, always given explicitly: pybind11 2.10 left them zero when they were omitted here.
std::vector<py::ssize_t> CStrides(const std::vector<py::ssize_t>& shape, py::ssize_t item) {
  std::vector<py::ssize_t> strides(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = item;
    item *= shape[d];
  }
  return strides;
}

// A NumPy view of the batch, keeping the batch alive through the array's base object.
py::array AsArray(std::shared_ptr<Batch> b, bool bf16) {
  auto* holder = new std::shared_ptr<Batch>(b);
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<Batch>*>(p); });
  std::vector<py::ssize_t> shape(b->shape().begin(), b->shape().end());
  return py::array(py::dtype(bf16 ? "uint16" : "float32"), shape, CStrides(shape, bf16 ? 2 : 4), b->data(), base);
}

class PyLoader {
 public:
  PyLoader(const std::string& url, int64_t rank, int64_t dp_rank, int64_t dp_size, int64_t batch_size,
           int64_t lead_steps, bool normalize, const std::string& dtype, uint64_t seed, bool shuffle,
           const std::string& start, const std::string& end, int64_t prefetch, int threads) {
    LoaderOptions o;
    o.rank = rank;
    o.dp_rank = dp_rank;
    o.dp_size = dp_size;
    o.batch_size = batch_size;
    o.lead_steps = lead_steps;
    o.normalize = normalize;
    o.dtype = Unwrap(ParseBatchType(dtype));
    o.seed = seed;
    o.shuffle = shuffle;
    o.start = start;
    o.end = end;
    o.prefetch = prefetch;
    o.threads = threads;
    bf16_ = o.dtype == BatchType::kBFloat16;
    py::gil_scoped_release release;
    loader_ = Unwrap(Loader::Open(url, o));
  }

  py::dict NextBatch() {
    std::shared_ptr<Batch> b;
    {
      py::gil_scoped_release release;  // the consumer may wait; let other Python threads run
      b = Unwrap(loader_->Next());
    }
    py::dict d;
    d["data"] = AsArray(b, bf16_);
    d["times"] = b->times();
    if (!b->members().empty()) d["members"] = b->members();  // a store of ensemble members
    d["epoch"] = b->epoch();
    d["index"] = b->index();
    return d;
  }

  py::dict State() const {
    auto s = loader_->state();
    py::dict d;
    d["epoch"] = s.epoch;
    d["batch"] = s.batch;
    return d;
  }
  void Restore(const py::dict& d) {
    LoaderState s{d["epoch"].cast<int64_t>(), d["batch"].cast<int64_t>()};
    py::gil_scoped_release release;
    Status st = loader_->Restore(s);
    if (!st.ok()) {
      py::gil_scoped_acquire acquire;
      Throw(st);
    }
  }
  py::dict Stats() const {
    auto s = loader_->stats();
    py::dict d;
    d["batches"] = s.batches;
    d["bytes_read"] = s.bytes_read;
    d["bytes_decoded"] = s.bytes_decoded;
    d["bytes_delivered"] = s.bytes_delivered;
    d["seconds"] = s.seconds;
    d["consumer_wait_seconds"] = s.consumer_wait_seconds;
    d["read_amplification"] = s.read_amplification();
    return d;
  }
  Loader& loader() { return *loader_; }

 private:
  std::unique_ptr<Loader> loader_;
  bool bf16_ = false;
};

std::pair<std::unique_ptr<KvStore>, std::string> OpenStep(const std::string& path) {
  return Unwrap(OpenCheckpointStep(path));
}

std::string NumpyDtype(const DataType& t) { return t.name == "bfloat16" ? "uint16" : t.name; }  // our names are NumPy's

std::string CheckpointManifest(const std::string& path) {
  auto [root, step] = OpenStep(path);
  return Unwrap(ReadManifest(root.get(), step)).ToJson().dump();
}

// Boxes of tensors, {name: (origin or None, shape or None)} -> {name: array}, loaded in parallel with the GIL
// released. The arrays own what LoadTensorBox gave them: a private mapping of the rank file for a rank's
// own tiles on a local disk (no copy; writable, copy-on-write), memory of their own otherwise.
py::dict CheckpointLoad(const std::string& path, const py::dict& requests) {
  auto [root, step] = OpenStep(path);
  Manifest m = Unwrap(ReadManifest(root.get(), step));
  std::vector<const TensorRecord*> tensors;
  std::vector<Box> boxes;
  for (const auto& [key, value] : requests) {
    const std::string name = key.cast<std::string>();
    const TensorRecord* t = m.Find(name);
    if (!t) throw py::key_error("no tensor \"" + name + "\" in " + root->url() + "/" + step);
    auto pair = value.cast<py::tuple>();
    tensors.push_back(t);
    boxes.push_back(
        {pair[0].is_none() ? std::vector<int64_t>(t->spec.shape.size(), 0) : pair[0].cast<std::vector<int64_t>>(),
         pair[1].is_none() ? t->spec.shape : pair[1].cast<std::vector<int64_t>>()});
  }
  std::vector<std::optional<LoadedBox>> loaded(tensors.size());
  FirstError err;
  {
    py::gil_scoped_release release;
    tbb::parallel_for(size_t{0}, tensors.size(), [&](size_t i) {
      auto r = LoadTensorBox(root.get(), step, m, *tensors[i], boxes[i]);
      if (r.ok())
        loaded[i].emplace(std::move(*r));
      else
        err.Set(r.status());
    });
  }
  if (Status st = err.Get(); !st.ok()) Throw(st);
  py::dict out;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto* owner = new LoadedBox(std::move(*loaded[i]));
    py::capsule base(owner, [](void* p) { delete static_cast<LoadedBox*>(p); });
    std::vector<py::ssize_t> dims(boxes[i].shape.begin(), boxes[i].shape.end());
    const DataType& dtype = tensors[i]->spec.dtype;
    out[py::str(tensors[i]->spec.name)] =
        py::array(py::dtype(NumpyDtype(dtype)), dims, CStrides(dims, dtype.size), owner->data(), base);
  }
  return out;
}

// A Communicator over a Python object: `rank`, `size`, gather(bytes) -> [bytes per rank] on rank 0 (None
// elsewhere), bcast(bytes) -> rank 0's bytes, barrier() (jigsaw.checkpoint wraps torch.distributed so).
// Called with the GIL released; each call takes it back.
class PyCommunicator final : public Communicator {
 public:
  explicit PyCommunicator(py::object comm)
      : comm_(std::move(comm)), rank_(comm_.attr("rank").cast<int64_t>()), size_(comm_.attr("size").cast<int64_t>()) {}
  ~PyCommunicator() override {
    py::gil_scoped_acquire acquire;
    comm_ = py::object();
  }
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  Result<std::vector<std::string>> Gather(const std::string& payload) override {
    return Call("gather", [&]() {
      py::object got = comm_.attr("gather")(py::bytes(payload));
      std::vector<std::string> out;
      if (!got.is_none())
        for (auto item : got) out.push_back(item.cast<std::string>());
      return out;
    });
  }
  Status Broadcast(std::string* value) override {
    return Call("bcast",
                [&]() {
                  *value = comm_.attr("bcast")(py::bytes(*value)).cast<std::string>();
                  return true;
                })
        .status();
  }
  Status Barrier() override {
    return Call("barrier",
                [&]() {
                  comm_.attr("barrier")();
                  return true;
                })
        .status();
  }

 private:
  template <typename F>
  auto Call(const char* what, F f) -> Result<decltype(f())> {
    py::gil_scoped_acquire acquire;
    try {
      return f();
    } catch (py::error_already_set& e) {
      return InternalError(std::string("communicator ") + what + ": " + e.what());
    } catch (py::cast_error& e) {
      return InternalError(std::string("communicator ") + what + " returned the wrong type: " + e.what());
    }
  }

  py::object comm_;
  int64_t rank_, size_;
};

// Python's atexit finalises MPI when this module initialised it.
std::unique_ptr<Communicator> MpiCommunicatorForPython() {
  static bool initialised_here = [] {
    bool did = Unwrap(InitializeMpi());
    if (did) py::module_::import("atexit").attr("register")(py::cpp_function([] { FinalizeMpi(); }));
    return did;
  }();
  (void)initialised_here;
  return Unwrap(NewMpiCommunicator());
}

// A save as Python describes it. tensors: {name: (array, partition or None, dtype name or None, global
// shape or None)}. Without `comm`, the arrays are whole tensors and this process saves every rank of the
// mesh; with one ("mpi", or an object as PyCommunicator takes), this process is one rank and each array is
// that rank's tile of a tensor of the global shape given (default: the array's).
struct PySave {
  int64_t step = 0;
  Mesh mesh;
  std::vector<TensorSpec> specs;
  std::vector<py::array> arrays;  // kept alive while the provider may read them
  std::vector<TensorBuffer> buffers;
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<KvStore> root;
  SaveOptions options;

  PySave(const std::string& root_url, int64_t step_, const std::string& mesh_text, const py::dict& tensors,
         const std::string& metadata_json, bool sync, const py::object& comm_arg)
      : step(step_), mesh(Unwrap(Mesh::Parse(mesh_text))) {
    if (py::isinstance<py::str>(comm_arg) && comm_arg.cast<std::string>() == "mpi")
      comm = MpiCommunicatorForPython();
    else if (!comm_arg.is_none())
      comm = std::make_unique<PyCommunicator>(comm_arg);
    for (const auto& [key, value] : tensors) {
      auto entry = value.cast<py::tuple>();
      py::array a = py::array::ensure(entry[0], py::array::c_style);
      if (!a) throw py::value_error("tensor " + key.cast<std::string>() + ": not an array");
      TensorSpec s;
      s.name = key.cast<std::string>();
      std::string dt = entry.size() > 2 && !entry[2].is_none() ? entry[2].cast<std::string>()
                                                               : py::str(a.dtype()).cast<std::string>();
      s.dtype = Unwrap(DataTypeFromName(dt));
      for (py::ssize_t d = 0; d < a.ndim(); ++d) s.shape.push_back(a.shape(d));
      if (entry.size() > 3 && !entry[3].is_none()) s.shape = entry[3].cast<std::vector<int64_t>>();
      s.partition = SpecFromPython(entry[1]);
      specs.push_back(s);
      buffers.push_back({static_cast<const char*>(a.data()), std::vector<int64_t>(a.shape(), a.shape() + a.ndim())});
      arrays.push_back(a);
    }
    options.sync = sync;
    options.metadata = Unwrap(ParseJson(metadata_json, "metadata"));
    root = Unwrap(OpenKvStore(root_url));
  }

  // Tiles cut from whole tensors, or (collectively) this rank's arrays as they are, checked for shape.
  TileProvider Provider() const { return TilesFromMemory(specs, buffers, !(comm && comm->size() > 1)); }
};

void CheckpointSave(const std::string& root_url, int64_t step, const std::string& mesh_text, const py::dict& tensors,
                    const std::string& metadata_json, bool sync, const py::object& comm) {
  PySave save(root_url, step, mesh_text, tensors, metadata_json, sync, comm);
  Status st;
  {
    py::gil_scoped_release release;
    st = SaveCheckpoint(save.root.get(), save.step, save.mesh, save.specs, save.Provider(), save.options,
                        save.comm.get());
  }
  if (!st.ok()) Throw(st);
}

// AsyncCheckpointSaver for Python: save() returns once this process's tiles are copied; wait() commits.
class PyAsyncSaver {
 public:
  void Save(const std::string& root_url, int64_t step, const std::string& mesh_text, const py::dict& tensors,
            const std::string& metadata_json, bool sync, const py::object& comm) {
    auto next = std::make_unique<PySave>(root_url, step, mesh_text, tensors, metadata_json, sync, comm);
    Status previous;
    {
      py::gil_scoped_release release;
      previous = saver_.Start(next->root.get(), next->step, next->mesh, next->specs, next->Provider(), next->options,
                              next->comm.get());
    }
    next->arrays.clear();  // copied: the caller may change its tensors now
    // The save before serves its commit (on rank 0's background thread) until the next save or wait().
    committing_ = std::move(current_);
    current_ = std::move(next);  // its store and communicator serve the save until wait()
    if (!previous.ok()) Throw(previous);
  }

  void Wait() {
    Status st;
    {
      py::gil_scoped_release release;
      st = saver_.Wait();
    }
    current_.reset();
    committing_.reset();
    if (!st.ok()) Throw(st);
  }

  bool in_flight() const { return saver_.in_flight(); }

 private:
  std::unique_ptr<PySave> committing_;  // declared first: destroyed after saver_, which uses them
  std::unique_ptr<PySave> current_;
  AsyncCheckpointSaver saver_;
};

}  // namespace

PYBIND11_MODULE(_jigsaw, m) {
  // The mesh and the split rule, from parallel/mesh.h: the Python package computes no tile itself.
  m.def(
      "mesh_axes", [](const std::string& text) { return Unwrap(Mesh::Parse(text)).axes; }, py::arg("mesh"),
      "[(axis, size), ...] of a mesh like \"domain=2,tensor=2\", parsed strictly (ValueError naming the part).");
  m.def(
      "tile_of",
      [](const std::vector<int64_t>& shape, const py::object& spec, const std::string& mesh, int64_t rank) {
        Box b = Unwrap(TileOf(shape, SpecFromPython(spec), Unwrap(Mesh::Parse(mesh)), rank));
        return std::make_pair(b.origin, b.shape);
      },
      py::arg("shape"), py::arg("spec"), py::arg("mesh"), py::arg("rank"),
      "(origin, shape) of the tile `rank` holds of a tensor of `shape` split by `spec` on `mesh`; ValueError for "
      "a rank outside the mesh (ranks do not wrap round) or a split the rule refuses.");
  m.def("checkpoint_manifest", &CheckpointManifest, py::arg("path"),
        "The manifest of a step (or a root's LATEST), as JSON text.");
  m.def("checkpoint_load", &CheckpointLoad, py::arg("path"), py::arg("boxes"),
        "Boxes of tensors, {name: (origin or None, shape or None)} -> {name: NumPy array}, loaded in parallel; "
        "a rank's own tiles on a local disk are mapped, not copied.");
  m.def("checkpoint_save", &CheckpointSave, py::arg("root"), py::arg("step"), py::arg("mesh"), py::arg("tensors"),
        py::arg("metadata") = "{}", py::arg("sync") = true, py::arg("comm") = py::none(),
        "Saves {name: (array, partition, dtype or None, global shape or None)}: whole tensors for every rank of the "
        "mesh from this process, or with `comm` (\"mpi\" or an object with rank, size, gather, bcast, barrier) "
        "this rank's tiles, collectively.");
  py::class_<PyAsyncSaver>(m, "AsyncSaver")
      .def(py::init<>())
      .def("save", &PyAsyncSaver::Save, py::arg("root"), py::arg("step"), py::arg("mesh"), py::arg("tensors"),
           py::arg("metadata") = "{}", py::arg("sync") = true, py::arg("comm") = py::none(),
           "As checkpoint_save, in the background: returns once this process's tiles are copied (raising the "
           "previous save's error, if any).")
      .def("wait", &PyAsyncSaver::Wait, "Waits for the save in flight and commits it (collectively with a comm).")
      .def_property_readonly("in_flight", &PyAsyncSaver::in_flight);
  m.doc() = "jigsaw: tile-aligned weather data for Jigsaw-parallel training (C++ core)";
  py::class_<PyLoader>(m, "Loader")
      .def(py::init<const std::string&, int64_t, int64_t, int64_t, int64_t, int64_t, bool, const std::string&, uint64_t,
                    bool, const std::string&, const std::string&, int64_t, int>(),
           py::arg("url"), py::kw_only(), py::arg("rank") = 0, py::arg("dp_rank") = 0, py::arg("dp_size") = 1,
           py::arg("batch_size") = 1, py::arg("lead_steps") = 1, py::arg("normalize") = true,
           py::arg("dtype") = "float32", py::arg("seed") = 0, py::arg("shuffle") = true, py::arg("start") = "",
           py::arg("end") = "", py::arg("prefetch") = 4, py::arg("threads") = 0,
           "Opens a jigsaw-shard store for one model-parallel rank (its tile) and one data-parallel replica.\n"
           "normalize (default True): each channel as (value - mean) / std with the store's statistics, as "
           "jigsaw-train feeds its model and a training loop wants; normalize=False gives the stored values "
           "(physical units).")
      .def("next_batch", &PyLoader::NextBatch,
           "The next batch: {'data': array [batch, 1 + lead_steps, channels, lat, lon] (float32, or uint16 words "
           "of bfloat16), 'times': input times (seconds since 1970), 'epoch', 'index'}.")
      .def("state", &PyLoader::State, "The position of the next batch: {'epoch', 'batch'}.")
      .def("restore", &PyLoader::Restore, py::arg("state"), "Continues exactly at a state() taken earlier.")
      .def("stats", &PyLoader::Stats, "Batches, bytes read/decoded/delivered, read amplification, consumer wait.")
      .def_property_readonly("batches_per_epoch", [](PyLoader& l) { return l.loader().batches_per_epoch(); })
      .def_property_readonly("batch_shape", [](PyLoader& l) { return l.loader().batch_shape(); })
      .def_property_readonly("channels", [](PyLoader& l) { return l.loader().channels(); })
      .def_property_readonly("tile_origin", [](PyLoader& l) { return l.loader().tile_origin(); })
      .def_property_readonly("tile_shape", [](PyLoader& l) { return l.loader().tile_shape(); })
      .def_property_readonly("allocator", [](PyLoader& l) { return l.loader().allocator_name(); })
      .def_property_readonly(
          "static_tile",
          [](PyLoader& l) {
            // A copy: small, read once, and then the caller's to keep.
            const auto shape = l.loader().static_tile_shape();
            py::array_t<float> a(shape);
            if (!l.loader().static_tile().empty())
              std::memcpy(a.mutable_data(), l.loader().static_tile().data(), l.loader().static_tile().size() * 4);
            return a;
          },
          "This rank's time-independent fields [static channels, lat, lon] (float32; normalised when the loader "
          "normalises); shape (0, lat, lon) for a store without them.")
      .def_property_readonly("static_channels", [](PyLoader& l) { return l.loader().static_channels(); });
}
