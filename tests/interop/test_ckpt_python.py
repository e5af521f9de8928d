"""jigsaw.checkpoint from Python: save a PyTorch state dict (Debian python3-torch) on one mesh, load a rank's
tiles on another, read boxes as NumPy; values equal the originals."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    with pytest.raises(ValueError, match=r"box \[30:40, 0:22\] is not within tensor w of shape \[37,22\]"):
        jc.read(tmp_path / "c", "w", [30, 0], [10, 22])
    # Boxes whose end overflows int64 (origin + shape wraps round) are refused, not read from other memory.
    for origin, shape in [([2**63 - 1, 0], [2, 2]), ([0, 0], [2**63 - 1, 22]), ([-1, 0], [2, 2])]:
        with pytest.raises(ValueError, match="is not within tensor w"):
            jc.read(tmp_path / "c", "w", origin, shape)


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
# Ranks outside the mesh and meshes that do not parse strictly are refused, naming them.
for bad_rank in (8, -1):
    try:
        jc.load_torch({str(tmp_path / "t")!r}, mesh="domain=4,tensor=2", rank=bad_rank)
        raise SystemExit("rank %d was accepted" % bad_rank)
    except ValueError as e:
        assert "rank %d is not a rank of mesh domain=4,tensor=2" % bad_rank in str(e), e
for bad_mesh in ("domain=2;tensor=8", "domain=2xyz", "domain=0"):
    try:
        jc.load_torch({str(tmp_path / "t")!r}, mesh=bad_mesh, rank=0)
        raise SystemExit("mesh %r was accepted" % bad_mesh)
    except ValueError as e:
        assert bad_mesh in str(e), e
print("ok")
"""
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_async_save_from_one_process(tmp_path):
    w = np.arange(64 * 8, dtype="float32").reshape(64, 8)
    saver = jc.AsyncSaver()
    saver.save(tmp_path / "a", 1, "domain=2", {"w": w}, partition={"w": ["domain", None]}, sync=False)
    saved = w.copy()
    w[:] = -1  # training goes on
    saver.save(tmp_path / "a", 2, "domain=2", {"w": w}, partition={"w": ["domain", None]}, sync=False)  # commits 1
    assert saver.in_flight  # 2 writing, 1 committing in the background
    saver.wait()
    assert not saver.in_flight
    assert jc.manifest(tmp_path / "a")["step"] == 2
    np.testing.assert_array_equal(jc.read(tmp_path / "a" / "step-00000001", "w"), saved)
    np.testing.assert_array_equal(jc.read(tmp_path / "a", "w"), w)
    saver.save(tmp_path / "a", 2, "domain=2", {"w": w}, partition={"w": ["domain", None]})
    with pytest.raises(RuntimeError, match="already committed"):
        saver.wait()


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


COLLECTIVE = """
import os, sys, torch
sys.path.insert(0, sys.argv[3])
import jigsaw.checkpoint as jc
mode, root = sys.argv[1], sys.argv[2]
if mode == "torch":
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method="file://" + sys.argv[4], rank=int(os.environ["RANK"]), world_size=4)
    rank, comm = dist.get_rank(), "torch"
else:
    rank, comm = int(os.environ["OMPI_COMM_WORLD_RANK"]), "mpi"
torch.manual_seed(0)  # every process makes the same full tensors and keeps only its tiles
full = {"enc.weight": torch.randn(30, 16), "enc.bias": torch.randn(16), "emb": torch.randn(7, 8).to(torch.bfloat16),
        "odd": torch.randn(31, 5)}
part = {"*.weight": ["domain", "tensor"], "emb": [None, "tensor"], "odd": ["domain", None]}
d, t = divmod(rank, 2)
mine = {"enc.weight": full["enc.weight"][d * 15:(d + 1) * 15, t * 8:(t + 1) * 8], "enc.bias": full["enc.bias"],
        "emb": full["emb"][:, t * 4:(t + 1) * 4], "odd": full["odd"][d * 16:(d + 1) * 16]}
jc.save(root, 1, "domain=2,tensor=2", mine, partition=part, comm=comm, shapes={"odd": [31, 5]}, metadata={"by": mode})
got = jc.load_torch(root)
for k in full:
    assert torch.equal(got[k], full[k]), k
tiles = jc.load_torch(root, mesh="domain=4,tensor=2", rank=rank)  # another mesh: this process as rank `rank` of 8
assert torch.equal(tiles["enc.weight"], full["enc.weight"][(rank // 2) * 8:(rank // 2 + 1) * 8, (rank % 2) * 8:(rank % 2 + 1) * 8])
# One rank holding the wrong tile (rank 2 writes odd's domain-1 tile; rank 3 holds a replica of it and
# writes nothing of it): every rank raises, rank 0 names the rank, LATEST stays at step 1.
bad = dict(mine)
if rank == 2:
    bad["odd"] = full["odd"][:3]
try:
    jc.save(root, 2, "domain=2,tensor=2", bad, partition=part, comm=comm, shapes={"odd": [31, 5]})
    raise SystemExit("a save with a wrong tile succeeded")
except (ValueError, RuntimeError) as e:
    # every rank hears of rank 2's mistake, named (rank 2 as its own error, the others as "rank 2: ...")
    assert "rank 2's tile [16:31, 0:5] is [15,5] but the buffer given is [3,5]" in str(e), (rank, str(e))
assert jc.manifest(root)["step"] == 1 and jc.manifest(root)["metadata"] == {"by": mode}
# Asynchronous: save() copies this rank's tiles and returns; changing them afterwards does not reach the save.
expected = {k: v.clone() for k, v in full.items()}
saver = jc.AsyncSaver()
saver.save(root, 3, "domain=2,tensor=2", mine, partition=part, comm=comm, shapes={"odd": [31, 5]})
for v in mine.values():
    v.zero_()
saver.wait()
assert not saver.in_flight and jc.manifest(root)["step"] == 3
got = jc.load_torch(root)
for k in expected:
    assert torch.equal(got[k], expected[k]), k
if rank == 0:  # what the test outside compares the saved tensor with
    import numpy
    numpy.save(f"{root}.odd.npy", expected["odd"].numpy())  # full shares memory with the zeroed tiles
open(f"{root}.ok.{rank}", "w").close()  # not stdout: mpirun interleaves the ranks' lines
"""


def test_collective_save_under_torch_distributed(tmp_path):
    """Four processes of a gloo process group, each passing only its own tiles (one uneven split)."""
    script = tmp_path / "collective.py"
    script.write_text(COLLECTIVE)
    pypath = os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python"))
    argv = ["/usr/bin/python3", str(script), "torch", str(tmp_path / "c"), pypath, str(tmp_path / "rendezvous")]
    procs = [subprocess.Popen(argv, env=dict(os.environ, RANK=str(r)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert sorted(p.name for p in tmp_path.glob("c.ok.*")) == [f"c.ok.{r}" for r in range(4)]
    np.testing.assert_array_equal(jc.read(tmp_path / "c", "odd"), np.load(f"{tmp_path / 'c'}.odd.npy"))


def test_collective_save_under_mpirun(tmp_path):
    """The same under mpirun -np 4, with comm="mpi" (the module initialises MPI itself)."""
    script = tmp_path / "collective.py"
    script.write_text(COLLECTIVE)
    pypath = os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python"))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    r = subprocess.run(["mpirun", "-np", "4", "--oversubscribe", "/usr/bin/python3", str(script), "mpi",
                        str(tmp_path / "c"), pypath], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in tmp_path.glob("c.ok.*")) == [f"c.ok.{r}" for r in range(4)]


def test_names_shapes_and_boxes_that_cannot_be_are_refused(tmp_path):
    """Every save path takes the import's rules: a name is a store key (never "" or "../x"), a shape has no
    negative extent; a box beyond int64 is a ValueError naming it, not a cast error."""
    for bad in ("", "../../x"):
        with pytest.raises(Exception, match="cannot be a tensor's name"):
            jc.save(tmp_path / f"bad{len(bad)}", 0, "domain=1", {bad: np.zeros(2, dtype=np.float32)})
        assert not (tmp_path / f"bad{len(bad)}" / "LATEST").exists()
    jc.save(tmp_path / "ok", 0, "domain=1", {"w": np.arange(4, dtype=np.float32)})
    with pytest.raises(ValueError, match="origin"):
        jc.read(tmp_path / "ok", "w", origin=[2**64], shape=[1])


def test_partition_entries_of_several_axes(tmp_path):
    """A dimension split by several mesh axes together (JAX's P(("a", "b")); jigsaw-train's stored layout
    writes them): saved, listed and read back by box from Python."""
    from jigsaw._jigsaw import tile_of
    mesh = "a=2,b=2,t=2"
    w = np.arange(8 * 6, dtype=np.float32).reshape(8, 6)
    jc.save(tmp_path / "ck", 0, mesh, {"w": w}, partition={"w": [["a", "b"], "t"]})
    assert jc.tensors(tmp_path / "ck")["w"]["partition"] == [["a", "b"], "t"]
    for rank in range(8):
        origin, shape = tile_of([8, 6], [["a", "b"], "t"], mesh, rank)
        assert shape == [2, 3] and origin == [2 * (rank // 2), 3 * (rank % 2)]
        np.testing.assert_array_equal(jc.read(tmp_path / "ck", "w", origin, shape),
                                      w[origin[0]:origin[0] + 2, origin[1]:origin[1] + 3])
