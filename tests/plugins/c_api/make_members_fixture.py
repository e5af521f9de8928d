"""Beside the C members test's store (jigsaw-shard --members all of cfgrib's ERA5 ensemble sample), what
zarr-python reads of rank 0's tile: members.bin = int64 T, int64 M, T int64 times, M int64 member values, then
data[:, :, 0:2, :, 0:60] float32 [T, M, 2, H, 60].
usage: make_members_fixture.py DIR  (DIR/ens.zarr exists)"""
import sys
from pathlib import Path

import numpy as np
import zarr

d = Path(sys.argv[1])
g = zarr.open_group(str(d / "ens.zarr"), mode="r")
times = np.asarray(g["time"][...], dtype="<i8")
members = np.asarray(g["member"][...], dtype="<i8")
data = np.asarray(g["data"][:, :, 0:2, :, 0:60], dtype="<f4")
with open(d / "members.bin", "wb") as f:
    f.write(np.int64(len(times)).tobytes() + np.int64(len(members)).tobytes())
    f.write(times.tobytes() + members.tobytes() + data.tobytes())
