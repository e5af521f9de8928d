"""`pip install .` as a Python user runs it: the wheel pyproject.toml builds (scikit-build-core, the module and
its C++ core only) installs into a fresh virtual environment, where `import jigsaw` and `jigsaw.torch` work
from any folder with no PYTHONPATH, and read a store as the module built by scripts/setup does."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

READ = r"""
import json, sys
import numpy as np
import jigsaw, jigsaw.torch
loader = jigsaw.Loader(sys.argv[1], rank=1, batch_size=2, lead_steps=1, seed=5)
batch = loader.next_batch()
ds = jigsaw.torch.TileDataset(sys.argv[1], rank=1, batch_size=2, lead_steps=1, seed=5)
first = next(iter(ds))
print(json.dumps({"module": jigsaw.__file__, "times": [int(t) for t in batch["times"]],
                  "sum": float(np.asarray(batch["data"], dtype=np.float64).sum()),
                  "torch_equal": bool((first.numpy() == batch["data"]).all()), "channels": list(loader.channels)}))
"""


def test_pip_install_gives_import_jigsaw_without_pythonpath(jigsaw, tmp_path):
    src = tmp_path / "src.zarr"
    jigsaw.shard("synth", src, "--grid", "19x36", "--times", "8")
    jigsaw.shard("run", "--source", src, "--vars", "z,t2m", "--levels", "500", "--tiles", "1x2x2",
                 "--out", tmp_path / "tiles.zarr")
    wheels = tmp_path / "wheels"
    # The build backend from the project's .venv (no download): pip builds in build-pip/, kept between runs.
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", wheels,
                        ROOT], capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout + p.stderr
    [wheel] = list(wheels.glob("jigsaw-*.whl"))
    # A fresh environment on Debian's CPython with its numpy and torch (python3-torch), as a user's would be.
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-index", "--no-deps", wheel], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    got = subprocess.run([venv / "bin" / "python", "-c", READ, tmp_path / "tiles.zarr"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=300)
    assert got.returncode == 0, got.stderr
    installed = json.loads(got.stdout)
    assert installed["module"].startswith(str(venv)) and installed["torch_equal"], installed
    # The same batch as the module scripts/setup builds (build/python).
    env["PYTHONPATH"] = os.environ.get("JIGSAW_PYTHONPATH", str(ROOT / "build" / "python"))
    built = json.loads(subprocess.run(["/usr/bin/python3", "-c", READ, tmp_path / "tiles.zarr"], capture_output=True,
                                      text=True, cwd=tmp_path, env=env, check=True, timeout=300).stdout)
    assert {k: installed[k] for k in ("times", "sum", "channels")} == {k: built[k] for k in ("times", "sum", "channels")}
