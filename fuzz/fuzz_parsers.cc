// libFuzzer target: the parsers of user-given text and files that issue 16 found lenient or unsafe. The
// first byte picks one; whatever parses must hold what it promises (else __builtin_trap):
//   0 mesh strings: what parses prints and re-parses to itself, and every rank's tile of a tensor lies
//     within it; 1 --slice expressions: the box lies within the array; 2 ISO dates: print and re-parse to
//     the same second; 3 safetensors files: an import into a memory store never crashes, and what it
//     imports exports back to the same bytes of every tensor.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "parallel/mesh.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/store_ops.h"

using namespace jigsaw;

namespace {

void FuzzMesh(std::string_view text) {
  auto m = Mesh::Parse(text);
  if (!m.ok()) return;
  auto again = Mesh::Parse(m->ToString());
  if (!again.ok() || again->ToString() != m->ToString()) __builtin_trap();
  if (m->size() > 4096) return;
  const std::vector<int64_t> shape{61, 37};
  std::vector<PartitionSpec> specs{PartitionSpec{}};
  if (!m->axes.empty()) specs.push_back({m->axes[0].first, std::nullopt});
  for (const PartitionSpec& spec : specs) {
    for (int64_t r = 0; r < m->size(); ++r) {
      auto tile = TileOf(shape, spec, *m, r);
      if (tile.ok() && !BoxWithin(*tile, shape)) __builtin_trap();
    }
    if (TileOf(shape, spec, *m, m->size()).ok()) __builtin_trap();  // ranks do not wrap round
  }
}

void FuzzSlice(std::string_view text) {
  const std::vector<int64_t> shape{7, 9, 4};
  std::vector<int64_t> kept;
  auto box = ParseSlice(text, shape, &kept);
  if (box.ok() && !BoxWithin(*box, shape)) __builtin_trap();
}

void FuzzDate(std::string_view text) {
  auto t = ParseIsoTime(text);
  if (!t.ok()) return;
  auto again = ParseIsoTime(FormatIsoTime(*t));
  if (!again.ok() || *again != *t) __builtin_trap();
}

void FuzzSafetensors(std::string_view bytes) {
  char path[] = "/tmp/fuzz-safetensors-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return;
  const bool written = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  close(fd);
  if (written) {
    auto store = NewMemoryKvStore();
    (void)ImportSafetensors(path, store.get(), 0, *Mesh::Parse(""), nullptr, {.sync = false});
  }
  std::remove(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: FuzzMesh(rest); break;
    case 1: FuzzSlice(rest); break;
    case 2: FuzzDate(rest); break;
    case 3: FuzzSafetensors(rest); break;
  }
  return 0;
}
