#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "storage/checkpoint/export.h"
#include "storage/checkpoint/format.h"
#include "storage/checkpoint/read.h"
#include "storage/codec/codec.h"
#include "storage/codec/json_fields.h"
#include "storage/zarr/metadata.h"

namespace jigsaw {

using namespace checkpoint_internal;

namespace {

const std::pair<const char*, const char*> kSafetensorsTypes[] = {
    {"F64", "float64"}, {"F32", "float32"}, {"F16", "float16"}, {"BF16", "bfloat16"}, {"I64", "int64"},
    {"I32", "int32"},   {"I16", "int16"},   {"I8", "int8"},     {"U64", "uint64"},    {"U32", "uint32"},
    {"U16", "uint16"},  {"U8", "uint8"},    {"BOOL", "bool"}};

struct SafetensorsFile {
  std::unique_ptr<KvStore> dir;
  std::string key;
  int64_t data_start = 0;
  struct Entry {
    TensorSpec spec;
    int64_t begin = 0, end = 0;
  };
  std::vector<Entry> entries;
  nlohmann::json metadata;
};

Result<SafetensorsFile> OpenSafetensors(const std::string& path) {
  SafetensorsFile f;
  size_t slash = path.rfind('/');
  f.dir = NewFileKvStore(slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash));
  f.key = slash == std::string::npos ? path : path.substr(slash + 1);
  Result<ReadResult> head_read = f.dir->Read(f.key, ByteRange::Span(0, 8));
  if (!head_read.ok()) return head_read.status().Annotate(path + " (the 8-byte header length)");
  ReadResult head = std::move(*head_read);
  if (head.missing) return NotFoundError("no file " + path);
  uint64_t n;
  std::memcpy(&n, head.value.data(), 8);
  if (n > (100u << 20))
    return InvalidArgumentError(path + ": safetensors header of " + std::to_string(n) + " bytes is implausible");
  Result<ReadResult> header_read = f.dir->Read(f.key, ByteRange::Span(8, 8 + static_cast<int64_t>(n)));
  if (!header_read.ok()) return header_read.status().Annotate(path + " (a header of " + std::to_string(n) + " bytes)");
  ReadResult hj = std::move(*header_read);
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(hj.value, path));
  f.data_start = 8 + static_cast<int64_t>(n);
  try {
    for (const auto& [name, t] : j.items()) {
      if (name == "__metadata__") {
        f.metadata = t;
        continue;
      }
      SafetensorsFile::Entry e;
      e.spec.name = name;
      std::string dt = t.at("dtype").get<std::string>();
      std::string ours;
      for (const auto& [s, o] : kSafetensorsTypes)
        if (dt == s) ours = o;
      if (ours.empty()) return UnimplementedError(path + ": tensor " + name + " has unsupported dtype " + dt);
      e.spec.dtype = DataTypeFromName(ours).value();
      // A name becomes a store key (checkpoint tensor, Zarr array path): "" or "../x" cannot be one.
      if (Status key = ValidateKey(name); !key.ok()) {
        return InvalidArgumentError(path + ": tensor name \"" + name +
                                    "\" cannot be a tensor's name: " + key.message());
      }
      Result<std::vector<int64_t>> shape = IntList(t.at("shape"), "shape");
      if (!shape.ok()) return shape.status().Annotate(path + ": tensor " + name);
      e.spec.shape = std::move(*shape);
      int64_t bytes = e.spec.dtype.size;
      for (int64_t d : e.spec.shape) {
        if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes)) {
          return InvalidArgumentError(path + ": tensor " + name + " has an impossible shape " + t.at("shape").dump());
        }
      }
      Result<std::vector<int64_t>> offsets = IntList(t.at("data_offsets"), "data_offsets");
      if (!offsets.ok()) return offsets.status().Annotate(path + ": tensor " + name);
      const std::vector<int64_t>& off = *offsets;
      if (off.size() != 2 || off[0] < 0 || off[1] < off[0] || off[1] - off[0] != bytes) {
        return InvalidArgumentError(path + ": tensor " + name + " has data_offsets " + t.at("data_offsets").dump() +
                                    " that do not match its shape and dtype (" + std::to_string(bytes) + " bytes)");
      }
      e.begin = off[0];
      e.end = off[1];
      f.entries.push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(path + ": malformed safetensors header: " + e.what());
  }
  // The format's own rule: the tensors index the whole byte buffer, in order, without holes or overlaps
  // (so that nothing else hides in the file).
  std::vector<const SafetensorsFile::Entry*> order;
  for (const auto& e : f.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(),
            [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  int64_t at = 0;
  for (const auto* e : order) {
    if (e->begin != at) {
      return InvalidArgumentError(path + ": tensor " + e->spec.name + " starts at byte " + std::to_string(e->begin) +
                                  " of the data, not " + std::to_string(at) + " where the tensor before it ends (" +
                                  (e->begin < at ? "overlap" : "a hole") + ")");
    }
    at = e->end;
  }
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  if (ec) return ErrnoToStatus(ec.value(), path);
  if (static_cast<int64_t>(file_size) != f.data_start + at) {
    return InvalidArgumentError(
        path + ": the file has " + std::to_string(file_size) + " bytes, but its header indexes " +
        std::to_string(f.data_start + at) +
        (static_cast<int64_t>(file_size) < f.data_start + at ? " (truncated)" : " (bytes after the last tensor)"));
  }
  return f;
}

}  // namespace

Status ImportSafetensors(const std::string& path, KvStore* root, int64_t step, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, const SaveOptions& options) {
  ASSIGN_OR_RETURN(SafetensorsFile f, OpenSafetensors(path));
  std::vector<TensorSpec> specs;
  std::map<std::string, const SafetensorsFile::Entry*> by_name;
  for (auto& e : f.entries) {
    e.spec.partition = partition ? partition(e.spec) : PartitionSpec{};
    specs.push_back(e.spec);
    by_name[e.spec.name] = &e;
  }
  SaveOptions o = options;
  if (!f.metadata.is_null()) o.metadata["safetensors_metadata"] = f.metadata;
  return SaveCheckpoint(
      root, step, mesh, specs,
      [&](int64_t, const TensorSpec& t, const Box& box) -> Result<std::string> {
        // Read the slab of outer rows holding the box, then cut the box out of it.
        const auto* e = by_name.at(t.name);
        const size_t rank = t.shape.size();
        int64_t outer = t.dtype.size;
        for (size_t d = 1; d < rank; ++d) outer *= t.shape[d];
        const int64_t a = rank ? box.origin[0] : 0, b = rank ? a + box.shape[0] : 1;
        ASSIGN_OR_RETURN(ReadResult r, f.dir->Read(f.key, ByteRange::Span(f.data_start + e->begin + a * outer,
                                                                          f.data_start + e->begin + b * outer)));
        std::vector<int64_t> slab = t.shape, src(rank), dst(rank, 0);
        if (rank) slab[0] = b - a;
        for (size_t d = 0; d < rank; ++d) src[d] = d == 0 ? 0 : box.origin[d];
        std::string out(Volume(box.shape) * t.dtype.size, '\0');
        CopyBox(r.value.data(), slab, src, out.data(), box.shape, dst, box.shape, t.dtype.size);
        return out;
      },
      o);
}

Status ExportSafetensors(KvStore* root, const std::string& step, const std::string& path,
                         const SafetensorsExportOptions& options) {
  std::string step_dir = step;
  if (step_dir.empty()) {
    ASSIGN_OR_RETURN(step_dir, LatestStep(root));
  }
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, step_dir));
  std::vector<const TensorRecord*> order;
  for (const auto& t : m.tensors)
    if (!options.include || options.include(t.spec.name)) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->spec.name < b->spec.name; });
  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const auto* t : order) {
    std::string dt;
    for (const auto& [s, o] : kSafetensorsTypes)
      if (t->spec.dtype.name == o) dt = s;
    int64_t n = Volume(t->spec.shape) * t->spec.dtype.size;
    header[t->spec.name] = {{"dtype", dt}, {"shape", t->spec.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  header["__metadata__"] = {{"format", "pt"}, {"jigsaw_step", std::to_string(m.step)}};
  for (const auto& [k, v] : options.metadata) header["__metadata__"][k] = v;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  // As the Zarr export: an existing file is not replaced (a model may be worth more than this export).
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    return FailedPreconditionError(path + " exists; choose another --out or delete it first");
  }
  const std::string tmp = path + ".tmp";
  // Whatever fails below (a corrupt tile, a full disk), the temporary file goes with it.
  struct RemoveUnlessRenamed {
    const std::string& file;
    bool renamed = false;
    ~RemoveUnlessRenamed() {
      if (!renamed) std::remove(file.c_str());
    }
  } cleanup{tmp};
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) return IoError("cannot create " + tmp);
  uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  // Tensor by tensor, in slabs of outer rows of at most 64 MiB: never a whole tensor in memory.
  for (const auto* t : order) {
    const size_t rank = t->spec.shape.size();
    int64_t row = t->spec.dtype.size;
    for (size_t d = 1; d < rank; ++d) row *= t->spec.shape[d];
    const int64_t rows = rank ? t->spec.shape[0] : 1;
    const int64_t per = std::max<int64_t>(1, (64 << 20) / std::max<int64_t>(row, 1));
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
      Box box{std::vector<int64_t>(rank, 0), t->spec.shape};
      if (rank) {
        box.origin[0] = r0;
        box.shape[0] = std::min(per, rows - r0);
      }
      ASSIGN_OR_RETURN(std::string bytes, ReadTensorBox(root, step_dir, m, *t, box));
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
  }
  out.close();
  if (!out) return IoError("cannot write " + tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoToStatus(errno, "rename to " + path);
  cleanup.renamed = true;
  return OkStatus();
}

}  // namespace jigsaw
