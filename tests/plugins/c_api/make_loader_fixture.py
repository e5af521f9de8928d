"""Beside the C loader test's store (written by jigsaw-shard), what an independent reader sees and two
damaged copies:
- expected.bin: int64 T, T int64 times (seconds since 1970), then rank 1's tile of every time step as
  zarr-python reads it: data[:, :, :, 8:16], float32 [T, C, H, 8], little-endian;
- static_expected.bin: rank 1's tile of the static fields as zarr-python reads them: static[:, :, 8:16],
  float32 [S, H, 8];
- corrupt.zarr: a copy with one flipped byte in a chunk of rank 1's (time 2);
- incomplete.zarr: a copy whose root attributes say the run did not finish (and, as such a store, no
  checksum record).
usage: make_loader_fixture.py DIR  (DIR/tiles.zarr exists)"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import zarr

d = Path(sys.argv[1])
g = zarr.open_group(str(d / "tiles.zarr"), mode="r")
data = np.asarray(g["data"][:, :, :, 8:16], dtype="<f4")
times = np.asarray(g["time"][...], dtype="<i8")
with open(d / "expected.bin", "wb") as f:
    f.write(np.int64(len(times)).tobytes())
    f.write(times.tobytes())
    f.write(data.tobytes())

(d / "static_expected.bin").write_bytes(np.asarray(g["static"][:, :, 8:16], dtype="<f4").tobytes())

shutil.copytree(d / "tiles.zarr", d / "corrupt.zarr")
chunk = d / "corrupt.zarr" / "data" / "c" / "2" / "0" / "0" / "1"
raw = bytearray(chunk.read_bytes())
raw[len(raw) // 2] ^= 0x04
chunk.write_bytes(bytes(raw))

shutil.copytree(d / "tiles.zarr", d / "incomplete.zarr")
meta = d / "incomplete.zarr" / "zarr.json"
meta.write_text(meta.read_text().replace('"complete": true', '"complete": false'))
(d / "incomplete.zarr" / "jigsaw-checksums.json").unlink()
