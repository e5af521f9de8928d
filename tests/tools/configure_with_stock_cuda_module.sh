#!/usr/bin/env bash
# Configures the project with Debian 12's stock FindCUDAToolkit.cmake (CMake 3.25.1), which marks
# CUDA::nvToolsExt deprecated even when the toolkit has none (CUDA 12.9+): the configure must still finish,
# with the CUDA parts in. Build machines may carry a patched module; this rebuilds the stock one from it.
#   configure_with_stock_cuda_module.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1 work=$2
module=$(cmake --system-information 2>/dev/null | sed -n 's/^CMAKE_ROOT "\(.*\)"$/\1/p')/Modules/FindCUDAToolkit.cmake
rm -rf "$work" && mkdir -p "$work/modules"
# The stock line, and the module's own helpers found from its new place.
sed -e 's/if(TARGET CUDA::nvToolsExt AND CMAKE_MINIMUM_REQUIRED_VERSION/if(CMAKE_MINIMUM_REQUIRED_VERSION/' \
    -e 's|include(${CMAKE_CURRENT_LIST_DIR}/\([A-Za-z]*\).cmake)|include(\1)|' "$module" > "$work/modules/FindCUDAToolkit.cmake"
grep -q 'if(CMAKE_MINIMUM_REQUIRED_VERSION VERSION_GREATER_EQUAL 3.25)' "$work/modules/FindCUDAToolkit.cmake" ||
  { echo "not CMake 3.25's module: nothing to check"; exit 0; }
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_MODULE_PATH="$work/modules" > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; echo "configure FAILED with the stock module"; exit 1; }
grep -q "CUDA backend" "$work/configure.log" && grep "CUDA backend\|NCCL" "$work/configure.log"
echo "configured with the stock module"
