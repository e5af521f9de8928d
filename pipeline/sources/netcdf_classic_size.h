// The NetCDF classic formats (CDF-1, CDF-2 "64-bit offset", CDF-5) keep no checksum, and libnetcdf reads the
// part of a variable beyond the end of a truncated file as zeros. So the header is read here (the format is
// public: NetCDF Classic Format Specification) to find where the last variable's data must end, and a file
// shorter than that is refused. NetCDF-4 (HDF5) files are left to libnetcdf, which refuses them itself.
#pragma once

#include <string>

#include "base/status.h"

namespace jigsaw {

// kDataLoss naming `name` when the classic-format file at `local` is shorter than its header says; OK for
// other formats, and for a streamed file whose record count is not yet written.
Status CheckClassicNetcdfSize(const std::string& local, const std::string& name);

}  // namespace jigsaw
