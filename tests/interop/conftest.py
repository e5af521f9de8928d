"""Shared fixtures for the interop and CLI tests: the jigsaw binaries, run as a user runs them."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

BIN_DIR = Path(os.environ.get("JIGSAW_BIN_DIR", Path(__file__).resolve().parents[2] / "build" / "cli"))


class Jigsaw:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir

    def run(self, tool, *args, check=True, timeout=300, env=None):
        """Runs a jigsaw tool (with `env` added to the environment); returns CompletedProcess. check=True
        asserts exit 0."""
        proc = subprocess.run([str(self.bin_dir / tool), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        assert proc.returncode >= 0, f"{tool} {args} died from signal {-proc.returncode}: {proc.stderr}"
        if check:
            assert proc.returncode == 0, f"{tool} {args} failed ({proc.returncode}):\n{proc.stderr}"
        return proc

    def store(self, *args, **kw):
        return self.run("jigsaw-store", *args, **kw)

    def shard(self, *args, **kw):
        return self.run("jigsaw-shard", *args, **kw)

    def ckpt(self, *args, **kw):
        return self.run("jigsaw-ckpt", *args, **kw)

    def training_store(self, d, times, end, config):
        """The trainer's test data in d: a synthetic 33x64 source of `times` 6-hourly steps, cut into 1x2x2
        tiles of t2m, msl, z and t at 500 and 850 hPa up to `end` (d/tiles.zarr), and d/model.json."""
        self.shard("synth", d / "src.zarr", "--grid", "33x64", "--times", str(times))
        self.shard("run", "--source", d / "src.zarr", "--vars", "t2m,msl,z,t", "--levels", "500,850",
                   "--start", "2020-01-01T00", "--end", end, "--tiles", "1x2x2", "--out", d / "tiles.zarr")
        (d / "model.json").write_text(json.dumps(config))
        return d

    def get(self, url, array, tmp_path, slice_=None, decode_cf=False):
        out = tmp_path / f"get-{abs(hash((str(url), array, slice_, decode_cf)))}.npy"
        args = ["get", url, array, "--out", out]
        if slice_ is not None:
            args += ["--slice", slice_]
        if decode_cf:
            args.append("--decode-cf")
        self.store(*args)
        return np.load(out)


# Open MPI as root, oversubscribed on a small machine; its own allocations outlive MPI_Finalize, so
# LeakSanitizer would fail every MPI run of the ASan build.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1",
           "ASAN_OPTIONS": "detect_leaks=0"}


def mpi_command(cmd, ranks):
    """`cmd` (a list) as `ranks` MPI processes under mpirun; as it is for one rank."""
    if ranks <= 1:
        return [str(c) for c in cmd]
    return [shutil.which("mpirun"), "-np", str(ranks), "--oversubscribe"] + [str(c) for c in cmd]


def run_ranks(cmd, ranks=1, check=True, env=None, timeout=300):
    """Runs `cmd` on `ranks` MPI processes with MPI_ENV (and `env`); check=True asserts exit 0."""
    p = subprocess.run(mpi_command(cmd, ranks), capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **MPI_ENV, **(env or {})})
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.fixture(scope="session")
def jigsaw():
    assert (BIN_DIR / "jigsaw-store").exists(), f"build jigsaw first (looked in {BIN_DIR})"
    return Jigsaw(BIN_DIR)


DEBIAN_READ = r"""
import sys, numpy as np, zarr, xarray as xr
path, out = sys.argv[1], sys.argv[2]
g = zarr.open_group(path, mode="r")
arrays = {name: a[...] for name, a in g.arrays()}
ds = xr.open_zarr(path)
extra = {}
if len(sys.argv) > 3:  # a store with a channel coordinate: select channel argv[3] of array argv[4] by name
    extra["sel"] = ds[sys.argv[4]].sel(channel=sys.argv[3]).values
np.savez(out, **arrays, **{"_" + k: v for k, v in extra.items()}, _vars=np.array(sorted(ds.variables)))
"""


def debian_read(path, out, channel="", array="data"):
    """Reads every array of the v2 store at `path` with Debian 12's zarr 2.13 (numcodecs 0.11) and opens it with
    its xarray; with `channel`, also selects that channel of `array` by name (as "_sel"). Returns the arrays."""
    args = [str(path), str(out)] + ([channel, array] if channel else [])
    r = subprocess.run(["/usr/bin/python3", "-c", DEBIAN_READ, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return np.load(out)


def assert_same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    native = lambda d: d.newbyteorder("=")  # noqa: E731  (byte order is storage, not value)
    assert native(a.dtype) == native(b.dtype), (a.dtype, b.dtype)
    if a.dtype.kind == "f":
        np.testing.assert_array_equal(a, b)  # NaN == NaN here
    else:
        assert np.array_equal(a, b)


@pytest.fixture(autouse=True)
def index_cache(tmp_path, monkeypatch):
    """Each test its own cache (GRIB file indexes): nothing written to the user's ~/.cache."""
    monkeypatch.setenv("JIGSAW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
