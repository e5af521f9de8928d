#!/usr/bin/env python3
"""Third-party test data fetched once into .cache/test-data (ignored by git):
- cfgrib's sample GRIB and NetCDF files (tests/sample-data of its source distribution on PyPI, fetched with
  `pip download --no-binary`): ERA5 on pressure levels with 10 ensemble members and its NetCDF sibling,
  reduced Gaussian grids, levels in Pa, missing values, grids that change between messages.
scripts/setup runs this; the tests call cfgrib_sample_data(), which fetches what is not there yet.
usage: test_data.py   (prints the folder)"""
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CFGRIB_VERSION = "0.9.15.1"


def cfgrib_sample_data() -> Path:
    root = REPO / ".cache" / "test-data" / f"cfgrib-{CFGRIB_VERSION}"
    data = root / "tests" / "sample-data"
    if (data / "era5-levels-members.grib").exists():
        return data
    download = root.parent / "download"
    shutil.rmtree(download, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-binary",
                    ":all:", "--no-deps", f"cfgrib=={CFGRIB_VERSION}", "-d", str(download)], check=True, timeout=600)
    (sdist,) = download.glob("cfgrib-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/tests/sample-data/" in m.name and m.isfile()]
        tar.extractall(root.parent, members=members)
    shutil.rmtree(download)
    assert (data / "era5-levels-members.grib").exists(), f"no era5-levels-members.grib in {sdist.name}"
    return data


if __name__ == "__main__":
    print(cfgrib_sample_data())
