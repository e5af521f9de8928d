"""jigsaw.checkpoint from Python: save a PyTorch state dict (Debian python3-torch) on one mesh, load a rank's
tiles on another, read boxes as NumPy; values equal the originals."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python")))
import jigsaw.checkpoint as jc  # noqa: E402
from jigsaw._jigsaw import checkpoint_load  # noqa: E402


def test_numpy_save_read_boxes(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((37, 22)).astype("float32")
    b = rng.integers(0, 9, (10,)).astype("int32")
    jc.save(tmp_path / "c", 5, "domain=2,tensor=2", {"w": w, "b": b}, partition={"w": ["domain", "tensor"]},
            metadata={"lr": 0.001}, sync=False)
    info = jc.tensors(tmp_path / "c")
    assert info["w"]["partition"] == ["domain", "tensor"] and info["b"]["partition"] == []
    assert jc.manifest(tmp_path / "c")["metadata"] == {"lr": 0.001}
    np.testing.assert_array_equal(jc.read(tmp_path / "c", "w"), w)
    np.testing.assert_array_equal(jc.read(tmp_path / "c" / "step-00000005", "w", [17, 3], [10, 15]), w[17:27, 3:18])
    np.testing.assert_array_equal(jc.read(tmp_path / "c", "b"), b)


def test_torch_state_dict_saved_on_one_mesh_loads_tiles_on_another(tmp_path):
    code = f"""
import sys, torch
sys.path.insert(0, {os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python"))!r})
import jigsaw.checkpoint as jc
torch.manual_seed(0)
sd = {{"enc.weight": torch.randn(30, 16), "enc.bias": torch.randn(16), "emb": torch.randn(7, 8).to(torch.bfloat16)}}
part = {{"*.weight": ["domain", "tensor"], "emb": [None, "tensor"]}}
jc.save({str(tmp_path / "t")!r}, 1, "domain=2,tensor=2", sd, partition=part, sync=False)
full = jc.load_torch({str(tmp_path / "t")!r})
for k in sd: assert torch.equal(full[k], sd[k]), k
for rank in range(8):
    tiles = jc.load_torch({str(tmp_path / "t")!r}, mesh="domain=4,tensor=2", rank=rank)
    d, t = divmod(rank, 2)
    assert torch.equal(tiles["enc.weight"], sd["enc.weight"][d * 8:(d + 1) * 8, t * 8:(t + 1) * 8])
    assert torch.equal(tiles["emb"], sd["emb"][:, t * 4:(t + 1) * 4])
    assert torch.equal(tiles["enc.bias"], sd["enc.bias"])
print("ok")
"""
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_own_tiles_load_mapped_writable_and_outlive_the_files(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((1024, 768)).astype("float32")  # two 1.5 MiB tiles on domain=2
    jc.save(tmp_path / "m", 3, "domain=2", {"w": w, "b": w[0, :8].copy()}, partition={"w": ["domain", None]},
            sync=False)
    tiles = checkpoint_load(str(tmp_path / "m"), {"w": ([512, 0], [512, 768]), "b": (None, None)})
    t = tiles["w"]
    np.testing.assert_array_equal(t, w[512:])
    maps = Path("/proc/self/maps").read_text()
    assert str(tmp_path / "m" / "step-00000003" / "rank-00001.bin") in maps  # mapped, not copied
    t[0, 0] = 42.0  # copy-on-write: ours to change, the checkpoint keeps its value
    assert jc.read(tmp_path / "m", "w", [512, 0], [1, 1])[0, 0] == w[512, 0]
    shutil.rmtree(tmp_path / "m")
    np.testing.assert_array_equal(t[1:], w[513:])  # still there after the files are gone
    np.testing.assert_array_equal(tiles["b"], w[0, :8])
