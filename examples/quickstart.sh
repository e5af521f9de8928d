#!/usr/bin/env bash
# Quickstart: make a tiny ERA5-like store, inspect it, convert it to a sharded Zarr v3 store, verify it,
# and read a box back. Run from the repository root after scripts/setup.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/jigsaw-quickstart}
rm -rf "$OUT" && mkdir -p "$OUT"
.venv/bin/python examples/make_tiny_era5.py "$OUT/era5.zarr"
build/cli/jigsaw-store ls "$OUT/era5.zarr"
build/cli/jigsaw-store copy "$OUT/era5.zarr" "$OUT/era5-v3.zarr" --format zarr3 --codec blosc-zstd --shard 8,5,33,64
build/cli/jigsaw-store verify "$OUT/era5-v3.zarr"
build/cli/jigsaw-store get "$OUT/era5-v3.zarr" temperature --slice "0,2,:,:" --out "$OUT/t500.npy"
.venv/bin/python -c "import numpy as np; a = np.load('$OUT/t500.npy'); print('temperature at 500 hPa, t=0:', a.shape, a.dtype, float(a.min()), float(a.max()))"
