// NumPy .npy files (format version 1.0), as written by `jigsaw-store get`.
#pragma once

#include <string>
#include <vector>

#include "storage/zarr/dtype.h"

namespace jigsaw {

// The .npy bytes for a C-order array of `dtype` elements in native order. bfloat16, which NumPy lacks, is
// widened to float32.
Result<std::string> EncodeNpy(const DataType& dtype, const std::vector<int64_t>& shape, std::string_view data);
// The descr string NumPy uses ("<f4", "|b1").
std::string NpyDescr(const DataType& dtype);

}  // namespace jigsaw
