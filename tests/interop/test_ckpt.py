"""jigsaw-ckpt: safetensors (written and read by the `safetensors` package) -> import -> reshard over several
meshes -> export, bit-exact; a flipped byte is found and named; a save killed at random moments never leaves
LATEST naming something that does not load."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

PARTITION = {"encoder.*.weight": ["domain", "tensor"], "*.bias": ["tensor"], "embedding": [None, "tensor"]}


def make_tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "encoder.0.weight": rng.standard_normal((37, 22)).astype("float32"),   # uneven splits
        "encoder.1.weight": rng.standard_normal((64, 48)).astype("float16"),
        "decoder.bias": rng.standard_normal((30,)).astype("float32"),
        "embedding": rng.integers(-1000, 1000, (9, 12)).astype("int64"),
        "step_scale": np.array(3.5, dtype="float64"),                          # 0-d, replicated
        "mask": (rng.random((5, 7)) > 0.5),
    }


@pytest.fixture
def source(tmp_path):
    tensors = make_tensors()
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    part = tmp_path / "partition.json"
    part.write_text(json.dumps(PARTITION))
    return tensors, path, part


def assert_same_tensors(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


def test_round_trip_over_meshes_is_bit_exact(jigsaw, tmp_path, source):
    tensors, path, part = source
    jigsaw.ckpt("import", path, "--mesh", "domain=1,tensor=1", "--partition", part, "--out", tmp_path / "m1",
                "--step", "100", "--no-sync")
    prev = tmp_path / "m1"
    for i, mesh in enumerate(["domain=2,tensor=1", "domain=2,tensor=2", "domain=4,tensor=2", "domain=3,tensor=2",
                              "domain=1,tensor=1"]):
        out = tmp_path / f"r{i}"
        jigsaw.ckpt("reshard", prev, "--mesh", mesh, "--out", out, "--no-sync")
        jigsaw.ckpt("verify", out)
        info = json.loads(jigsaw.ckpt("inspect", out, "--json").stdout)
        assert info["step"] == 100 and [a[1] for a in info["mesh"]] == [int(x.split("=")[1]) for x in mesh.split(",")]
        exported = tmp_path / f"r{i}.safetensors"
        jigsaw.ckpt("export", out / "step-00000100", "--out", exported)
        assert_same_tensors(load_file(str(exported)), tensors)
        prev = out
    # The 4x2 layout: 8 rank files, replicated tensors written once (by rank 0).
    info = json.loads(jigsaw.ckpt("inspect", tmp_path / "r2", "--json").stdout)
    assert len(info["tensors"]["encoder.0.weight"]["tiles"]) == 8
    assert len(info["tensors"]["step_scale"]["tiles"]) == 1
    assert len(info["tensors"]["decoder.bias"]["tiles"]) == 2
    for t in info["tensors"].values():
        for tile in t["tiles"]:
            assert tile["offset"] % 4096 == 0


def test_reshard_with_a_new_partition_moves_the_split_and_keeps_the_bytes(jigsaw, tmp_path, source):
    """--partition on reshard: encoder weights split by rows only, the bias replicated, on another mesh."""
    tensors, path, part = source
    jigsaw.ckpt("import", path, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", tmp_path / "a",
                "--no-sync")
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"encoder.*.weight": ["domain", None], "decoder.bias": []}))
    jigsaw.ckpt("reshard", tmp_path / "a", "--mesh", "domain=4,tensor=2", "--partition", new, "--out", tmp_path / "b",
                "--no-sync")
    jigsaw.ckpt("verify", tmp_path / "b")
    info = json.loads(jigsaw.ckpt("inspect", tmp_path / "b", "--json").stdout)["tensors"]
    w = info["encoder.1.weight"]
    assert w["partition"] == ["domain", None], w["partition"]
    assert sorted(t["origin"][0] for t in w["tiles"]) == [0, 16, 32, 48]    # 64 rows in 4 parts
    assert all(t["shape"] == [16, 48] for t in w["tiles"])                  # whole rows
    assert len(info["decoder.bias"]["tiles"]) == 1                                 # replicated: written once
    assert info["embedding"]["partition"] == [] and len(info["embedding"]["tiles"]) == 1  # unmatched: replicated
    jigsaw.ckpt("export", tmp_path / "b", "--out", tmp_path / "b.safetensors")
    assert_same_tensors(load_file(str(tmp_path / "b.safetensors")), tensors)
    # A rule naming an axis the mesh lacks is refused, naming it, and nothing is committed.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embedding": ["data", None]}))
    r = jigsaw.ckpt("reshard", tmp_path / "a", "--mesh", "domain=2", "--partition", bad, "--out", tmp_path / "c",
                    check=False)
    assert r.returncode == 2 and '"data"' in r.stderr, r.stderr
    assert not (tmp_path / "c" / "LATEST").exists()


def test_zarr_export_reads_in_zarr_python_and_tensorstore(jigsaw, tmp_path, source):
    import tensorstore as ts
    import zarr
    tensors, path, part = source
    jigsaw.ckpt("import", path, "--mesh", "domain=3,tensor=2", "--partition", part, "--out", tmp_path / "c",
                "--no-sync")
    jigsaw.ckpt("export", tmp_path / "c", "--out", tmp_path / "c.zarr")
    group = zarr.open_group(tmp_path / "c.zarr", mode="r")
    assert group.attrs["jigsaw_mesh"] == [["domain", 3], ["tensor", 2]]
    for name, want in tensors.items():
        got = group[name][...]
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), name
        t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "c.zarr" / name)}}).result()
        assert t.read().result().tobytes() == want.tobytes(), name
    # one chunk per tile of the saved mesh (uneven 37 rows over 3: chunks of 13)
    assert group["encoder.0.weight"].chunks == (13, 11)
    assert group["encoder.0.weight"].attrs["jigsaw_partition"] == ["domain", "tensor"]
    r = jigsaw.ckpt("export", tmp_path / "c", "--out", tmp_path / "c.zarr", check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    # Neither export replaces what is there: the safetensors file is refused like the Zarr group.
    jigsaw.ckpt("export", tmp_path / "c", "--out", tmp_path / "c.safetensors")
    before = (tmp_path / "c.safetensors").read_bytes()
    r = jigsaw.ckpt("export", tmp_path / "c", "--out", tmp_path / "c.safetensors", check=False)
    assert r.returncode != 0 and "c.safetensors exists" in r.stderr, r.stderr
    assert (tmp_path / "c.safetensors").read_bytes() == before


def test_exported_file_reads_in_pytorch(jigsaw, tmp_path, source):
    tensors, path, part = source
    jigsaw.ckpt("import", path, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", tmp_path / "c", "--no-sync")
    out = tmp_path / "e.safetensors"
    jigsaw.ckpt("export", tmp_path / "c", "--out", out)
    # Debian's python3-torch has no safetensors package: parse the format by hand there.
    code = f"""
import json, struct, torch
raw = open({str(out)!r}, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
dt = {{'F32': torch.float32, 'F16': torch.float16, 'F64': torch.float64, 'I64': torch.int64, 'BOOL': torch.bool}}
for k, v in sorted(h.items()):
    if k == '__metadata__': continue
    b, e = v['data_offsets']
    t = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e]), dtype=dt[v['dtype']]).reshape(v['shape'])
    print(k, t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex())
"""
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # Byte for byte as PyTorch reads them (per-tensor sums would let a permutation pass).
    got = dict(line.split() for line in r.stdout.splitlines())
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        assert got[k] == np.ascontiguousarray(v).tobytes().hex(), k


def test_flipped_byte_is_found_and_named(jigsaw, tmp_path, source):
    _, path, part = source
    root = tmp_path / "c"
    jigsaw.ckpt("import", path, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", root, "--no-sync")
    rank_file = root / "step-00000000" / "rank-00003.bin"
    b = bytearray(rank_file.read_bytes())
    b[10] ^= 0x40
    rank_file.write_bytes(bytes(b))
    r = jigsaw.ckpt("verify", root, check=False)
    assert r.returncode == 1 and "rank-00003.bin" in r.stdout and "crc32c mismatch" in r.stdout and "tensor" in r.stdout
    r = jigsaw.ckpt("export", root, "--out", tmp_path / "x.safetensors", check=False)
    assert r.returncode != 0 and "crc32c mismatch" in r.stderr
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "x.safetensors.tmp").exists()
    # The Zarr export stops at the bad tile; what it left says it is unfinished, and once the file is mended
    # the export reruns into the same place.
    r = jigsaw.ckpt("export", root, "--out", tmp_path / "x.zarr", check=False)
    assert r.returncode != 0 and "crc32c mismatch" in r.stderr
    v = jigsaw.store("verify", tmp_path / "x.zarr", check=False)
    assert v.returncode != 0 and "unfinished: a jigsaw-ckpt Zarr export" in v.stdout + v.stderr, v.stdout + v.stderr
    b[10] ^= 0x40
    rank_file.write_bytes(bytes(b))
    jigsaw.ckpt("export", root, "--out", tmp_path / "x.zarr")
    jigsaw.store("verify", tmp_path / "x.zarr")
    b[10] ^= 0x40
    rank_file.write_bytes(bytes(b))
    manifest = root / "step-00000000" / "manifest.json"
    text = manifest.read_text()
    # A flipped digit keeps the JSON valid: the manifest's own checksum catches it.
    i = text.index('"offset": 4096')
    manifest.write_text(text[:i] + '"offset": 4097' + text[i + len('"offset": 4096'):])
    r = jigsaw.ckpt("inspect", root, check=False)
    assert r.returncode != 0 and "manifest.json" in r.stderr and "checksum" in r.stderr
    manifest.write_text(text[:-40])
    r = jigsaw.ckpt("inspect", root, check=False)
    assert r.returncode != 0 and "manifest.json" in r.stderr


def test_killed_saves_never_leave_latest_broken(jigsaw, tmp_path):
    """Import (a collective save) killed at random moments, many times: LATEST always names a step that
    verifies, and leftovers are cleaned up by the next save."""
    rng = np.random.default_rng(1)
    big = {f"layer{i}.weight": rng.standard_normal((512, 1024)).astype("float32") for i in range(8)}
    src = tmp_path / "big.safetensors"
    save_file(big, str(src))
    part = tmp_path / "p.json"
    part.write_text(json.dumps({"*": ["domain", "tensor"]}))
    root = tmp_path / "root"
    t0 = time.perf_counter()
    jigsaw.ckpt("import", src, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", root, "--step", "0")
    took = time.perf_counter() - t0
    # Kill moments drawn within one save's own duration on this machine (a fixed window let a fast machine
    # finish every save before its kill), until 4 saves were killed mid-way.
    killed = step = 0
    while killed < 4 and step < 40:
        step += 1
        p = subprocess.Popen([str(jigsaw.bin_dir / "jigsaw-ckpt"), "import", str(src), "--mesh", "domain=2,tensor=2",
                              "--partition", str(part), "--out", str(root), "--step", str(step)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.9 * took))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        latest = (root / "LATEST").read_text().strip()
        jigsaw.ckpt("verify", root / latest)
    assert killed == 4, (killed, step, took)
    jigsaw.ckpt("import", src, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", root, "--step", "99")
    for d in os.listdir(root):
        if d.startswith("step-"):
            assert (root / d / "manifest.json").exists(), f"leftover {d} not cleaned up"
    out = tmp_path / "back.safetensors"
    jigsaw.ckpt("export", root, "--out", out)
    assert_same_tensors(load_file(str(out)), big)


def test_a_save_removes_what_killed_saves_left_at_any_moment(jigsaw, tmp_path, source):
    """What a save killed at its earliest moments leaves: a step directory made but still empty (killed
    between its mkdir and its first file), or holding only a dead writer's temporary file. The next save
    removes both (on Debian 13 the kill test met the first: "leftover step-00000002 not cleaned up")."""
    _, path, part = source
    root = tmp_path / "root"
    jigsaw.ckpt("import", path, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", root, "--no-sync")
    (root / "step-00000001").mkdir()
    (root / "step-00000002").mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (root / "step-00000002" / f"rank-00000.bin.__jigsaw_tmp.{dead.pid}.0").write_bytes(b"partial")
    jigsaw.ckpt("import", path, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", root, "--step", "3",
                "--no-sync")
    assert sorted(d for d in os.listdir(root) if d.startswith("step-")) == ["step-00000000", "step-00000003"]


def test_bad_input(jigsaw, tmp_path, source):
    _, path, part = source
    r = jigsaw.ckpt("import", path, "--mesh", "domain=0", "--out", tmp_path / "x", check=False)
    assert r.returncode == 2 and "positive" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"*": ["nosuchaxis"]}))
    r = jigsaw.ckpt("import", path, "--mesh", "domain=2", "--partition", bad, "--out", tmp_path / "y", check=False)
    assert r.returncode == 2 and "nosuchaxis" in r.stderr
    r = jigsaw.ckpt("import", path, "--mesh", "domain=64,tensor=1", "--partition", part, "--out", tmp_path / "z", check=False)
    assert r.returncode == 2 and "cannot split dimension" in r.stderr
    r = jigsaw.ckpt("inspect", tmp_path / "nothing", check=False)
    assert r.returncode == 2 and "LATEST" in r.stderr
    jigsaw.ckpt("import", path, "--mesh", "domain=1", "--out", tmp_path / "w", "--no-sync")
    r = jigsaw.ckpt("import", path, "--mesh", "domain=1", "--out", tmp_path / "w", "--no-sync", check=False)
    assert r.returncode != 0 and "already committed" in r.stderr


def test_a_truncated_rank_file_is_named_with_its_tensor(jigsaw, tmp_path, source):
    """A rank file shorter than its manifest says: verify, export and the Python load name the file and a
    tensor, not only "byte range ... outside a value of N bytes"."""
    _, path, part = source
    root = tmp_path / "c"
    jigsaw.ckpt("import", path, "--mesh", "domain=2,tensor=2", "--partition", part, "--out", root, "--no-sync")
    rank_file = root / "step-00000000" / "rank-00001.bin"
    rank_file.write_bytes(rank_file.read_bytes()[:100])
    r = jigsaw.ckpt("verify", root, check=False)
    assert r.returncode == 1 and "rank-00001.bin" in r.stdout and "(tensor " in r.stdout, r.stdout
    r = jigsaw.ckpt("export", root, "--out", tmp_path / "x.safetensors", check=False)
    assert r.returncode != 0 and "step-00000000/rank-00001.bin (tensor " in r.stderr, r.stderr
