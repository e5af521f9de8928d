// Element-level helpers on dense C-order chunk buffers, shared by the codecs and the array layer.
#include <algorithm>
#include <cstring>

#include "storage/codec/codec.h"

namespace jigsaw {

void ByteSwapInPlace(std::span<char> data, int item_size) {
  if (item_size <= 1) return;
  for (size_t i = 0; i + item_size <= data.size(); i += item_size) std::reverse(&data[i], &data[i] + item_size);
}

void TransposeCopy(const char* in, char* out, std::span<const int64_t> shape, std::span<const int> order,
                   int item_size) {
  const size_t n = shape.size();
  std::vector<int64_t> in_stride(n), out_shape(n), stride(n);
  int64_t s = item_size;
  for (size_t i = n; i-- > 0;) {
    in_stride[i] = s;
    s *= shape[i];
  }
  int64_t total = 1;
  for (size_t i = 0; i < n; ++i) {
    out_shape[i] = shape[order[i]];
    stride[i] = in_stride[order[i]];
    total *= out_shape[i];
  }
  if (total == 0) return;
  std::vector<int64_t> idx(n, 0);
  int64_t offset = 0;
  const int64_t inner = n ? out_shape[n - 1] : 1, inner_stride = n ? stride[n - 1] : 0;
  for (int64_t done = 0; done < total; done += inner) {
    for (int64_t k = 0; k < inner; ++k) {
      std::memcpy(out, in + offset + k * inner_stride, item_size);
      out += item_size;
    }
    for (size_t d = n - 1; d-- > 0;) {  // odometer over all but the last dimension
      offset += stride[d];
      if (++idx[d] < out_shape[d]) break;
      offset -= stride[d] * out_shape[d];
      idx[d] = 0;
    }
  }
}

bool AllEqualTo(std::string_view data, std::string_view fill) {
  const size_t k = fill.size();
  if (k == 0) return true;
  bool uniform = std::all_of(fill.begin(), fill.end(), [&](char c) { return c == fill[0]; });
  if (uniform) {
    return data.empty() || (data[0] == fill[0] && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
  }
  for (size_t i = 0; i + k <= data.size(); i += k)
    if (std::memcmp(data.data() + i, fill.data(), k) != 0) return false;
  return true;
}

void FillWith(std::span<char> data, std::string_view fill) {
  const size_t k = fill.size();
  if (k == 0) return;
  if (std::all_of(fill.begin(), fill.end(), [&](char c) { return c == fill[0]; })) {
    std::memset(data.data(), fill[0], data.size());
    return;
  }
  // One element, then the filled prefix doubled: a few large copies instead of one per element.
  const size_t n = data.size() / k * k;
  if (n == 0) return;
  std::memcpy(data.data(), fill.data(), k);
  for (size_t done = k; done < n;) {
    const size_t step = std::min(done, n - done);
    std::memcpy(data.data() + done, data.data(), step);
    done += step;
  }
}

void FillOutside(char* data, std::span<const int64_t> shape, std::span<const int64_t> origin,
                 std::span<const int64_t> extent, std::string_view fill) {
  if (shape.empty()) return;
  const int64_t item = static_cast<int64_t>(fill.size());
  int64_t stride = item;  // bytes per index of the outermost dimension
  for (size_t d = 1; d < shape.size(); ++d) stride *= shape[d];
  FillWith(std::span<char>(data, origin[0] * stride), fill);
  const int64_t end = origin[0] + extent[0];
  FillWith(std::span<char>(data + end * stride, (shape[0] - end) * stride), fill);
  bool inner_covered = true;
  for (size_t d = 1; d < shape.size(); ++d) inner_covered &= origin[d] == 0 && extent[d] == shape[d];
  if (inner_covered) return;
  for (int64_t i = origin[0]; i < end; ++i) {
    FillOutside(data + i * stride, shape.subspan(1), origin.subspan(1), extent.subspan(1), fill);
  }
}

void CopyBox(const char* src, std::span<const int64_t> src_shape, std::span<const int64_t> src_origin, char* dst,
             std::span<const int64_t> dst_shape, std::span<const int64_t> dst_origin, std::span<const int64_t> extent,
             int item_size) {
  const size_t n = extent.size();
  if (n == 0) {
    std::memcpy(dst, src, item_size);
    return;
  }
  std::vector<int64_t> ss(n), ds(n);
  int64_t a = item_size, b = item_size;
  for (size_t i = n; i-- > 0;) {
    ss[i] = a;
    ds[i] = b;
    a *= src_shape[i];
    b *= dst_shape[i];
  }
  int64_t so = 0, doff = 0, rows = 1;
  for (size_t i = 0; i < n; ++i) {
    so += src_origin[i] * ss[i];
    doff += dst_origin[i] * ds[i];
    if (extent[i] == 0) return;
    if (i + 1 < n) rows *= extent[i];
  }
  const int64_t row = extent[n - 1] * item_size;
  std::vector<int64_t> idx(n, 0);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + doff, src + so, row);
    for (size_t d = n - 1; d-- > 0;) {
      so += ss[d];
      doff += ds[d];
      if (++idx[d] < extent[d]) break;
      so -= ss[d] * extent[d];
      doff -= ds[d] * extent[d];
      idx[d] = 0;
    }
  }
}

}  // namespace jigsaw
