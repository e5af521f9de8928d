"""Sharded checkpoints from Python: list tensors, read any box as NumPy, save and load PyTorch state dicts.

    jigsaw.checkpoint.save("ckpt", 100, "domain=2,tensor=2", model.state_dict(),
                           partition={"encoder.*.weight": ["domain", "tensor"]}, metadata={"lr": 1e-3})
    jigsaw.checkpoint.tensors("ckpt")                         # {name: {"dtype", "shape", "partition"}}
    jigsaw.checkpoint.read("ckpt", "encoder.0.weight", origin=[0, 0], shape=[8, 8])
    state = jigsaw.checkpoint.load_torch("ckpt", mesh="domain=4,tensor=2", rank=3,
                                         partition={"encoder.*.weight": ["domain", "tensor"]})

`save` writes every rank's tiles from this process (tools, tests, single-node jobs), or, with `comm`, is
collective: one process per rank, each passing only its tiles (training under torch.distributed or mpirun):

    jigsaw.checkpoint.save("ckpt", 100, "domain=2,tensor=2", my_tiles, partition=..., comm="torch")

`load_torch` with a mesh and rank reads only that rank's tiles, on any mesh.
"""
import fnmatch
import json

import numpy as np

from ._jigsaw import AsyncSaver as _AsyncSaver
from ._jigsaw import checkpoint_load, checkpoint_manifest, checkpoint_save, mesh_axes, tile_of

__all__ = ["manifest", "tensors", "read", "save", "load_torch", "AsyncSaver", "TorchCommunicator"]


def manifest(path):
    return json.loads(checkpoint_manifest(str(path)))


def tensors(path):
    return {k: {"dtype": v["dtype"], "shape": v["shape"], "partition": v["partition"]}
            for k, v in manifest(path)["tensors"].items()}


def _int64s(values, what):
    """A list of whole numbers that fit int64 (a box's origin or shape), or ValueError naming it."""
    if values is None:
        return None
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -2**63 <= int(v) < 2**63:
            raise ValueError(f"{what} {list(values)!r}: each entry must be a whole number within int64")
        out.append(int(v))
    return out


def read(path, name, origin=None, shape=None):
    origin, shape = _int64s(origin, "origin"), _int64s(shape, "shape")
    return checkpoint_load(str(path), {name: (origin, shape)})[name]


def _spec(name, partition):
    for pattern, spec in (partition or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            return spec
    return None


def save(root, step, mesh, state_dict, partition=None, metadata=None, sync=True, *, comm=None, shapes=None):
    """Saves step `step` of a checkpoint on `mesh` ("domain=2,tensor=2").

    state_dict: name -> NumPy array or torch tensor; partition: name/glob -> spec (default replicated).
    Without `comm`, the values are whole tensors and this process writes every rank's tiles.
    With `comm`, the save is collective, one process per rank of the mesh (mesh rank = the process's rank):
    each process passes only its own tiles and `shapes` maps split tensors to their global shapes (default:
    the tile's shape times the parts of each split dimension, right for even splits). `comm` is "mpi" (the
    processes of mpirun; MPI is initialised if nothing else did), "torch" (torch.distributed's default
    group), a torch.distributed process group, or any object with `rank`, `size`, `gather(bytes)` (a list
    on rank 0, None elsewhere), `bcast(bytes)` and `barrier()`. Every rank raises if any rank fails; ranks
    that disagree on the step, the mesh or the tensors are refused before anything is written.
    """
    checkpoint_save(*_save_args(root, step, mesh, state_dict, partition, metadata, sync, comm, shapes))


class AsyncSaver:
    """Saves in the background, at most one save in flight:

        saver = jigsaw.checkpoint.AsyncSaver()
        saver.save("ckpt", step, "domain=2,tensor=2", my_tiles, partition=rules, comm="torch")  # copies, returns
        ...  # training goes on and may change the tensors
        saver.wait()  # commits (every rank calls it, as it calls save); raises this save's error

    save() takes the arguments of jigsaw.checkpoint.save; it first waits for the previous save's writes,
    raising its error if it had one, and starts that save's commit (rank 0 writes the manifest, then LATEST)
    in the background, which the save after (or wait()) reports. So LATEST moves to a step some time after
    the next save returns, and surely once wait() returns. A collective save that is never waited for is
    never committed: LATEST keeps naming the previous step, and the next save clears the unfinished one.
    """

    def __init__(self):
        self._impl = _AsyncSaver()

    def save(self, root, step, mesh, state_dict, partition=None, metadata=None, sync=True, *, comm=None, shapes=None):
        self._impl.save(*_save_args(root, step, mesh, state_dict, partition, metadata, sync, comm, shapes))

    def wait(self):
        self._impl.wait()

    @property
    def in_flight(self):
        return self._impl.in_flight


def _parts(entry, axes):
    """How many parts a partition entry (None, an axis, or a list of axes splitting together) makes."""
    if entry is None:
        return 1
    names = [entry] if isinstance(entry, str) else list(entry)
    n = 1
    for a in names:
        n *= axes.get(a, 1)
    return n


def _save_args(root, step, mesh, state_dict, partition, metadata, sync, comm, shapes):
    axes = dict(_mesh_axes(mesh))
    comm = _communicator(comm)
    collective = comm is not None
    arrays = {}
    for name, value in state_dict.items():
        dtype = None
        if hasattr(value, "detach"):  # a torch tensor
            t = value.detach().cpu().contiguous()
            if str(t.dtype) == "torch.bfloat16":
                import torch
                value, dtype = t.view(torch.int16).numpy().view(np.uint16), "bfloat16"
            else:
                value = t.numpy()
        value = np.ascontiguousarray(value)
        spec = _spec(name, partition)
        shape = None
        if collective:
            shape = (shapes or {}).get(name)
            if shape is None:
                shape = [n * _parts(a, axes) for n, a in zip(value.shape, list(spec or []) + [None] * value.ndim)]
        arrays[name] = (value, spec, dtype, None if shape is None else [int(n) for n in shape])
    return str(root), int(step), mesh, arrays, json.dumps(metadata or {}), sync, comm


class TorchCommunicator:
    """torch.distributed (any backend that gathers objects, e.g. gloo) as a checkpoint communicator."""

    def __init__(self, group=None):
        import torch.distributed as dist
        self._dist, self._group = dist, group
        self.rank, self.size = dist.get_rank(group), dist.get_world_size(group)
        get_global_rank = getattr(dist, "get_global_rank", None) or dist.distributed_c10d._get_global_rank
        self._root = 0 if group is None else get_global_rank(group, 0)

    def gather(self, payload):
        out = [None] * self.size if self.rank == 0 else None
        self._dist.gather_object(payload, out, dst=self._root, group=self._group)
        return out

    def bcast(self, payload):
        box = [payload]
        self._dist.broadcast_object_list(box, src=self._root, group=self._group)
        return box[0]

    def barrier(self):
        self._dist.barrier(group=self._group)


def _communicator(comm):
    if comm is None or comm == "mpi" or hasattr(comm, "bcast"):
        return comm
    if comm == "torch":
        return TorchCommunicator()
    return TorchCommunicator(comm)  # a torch.distributed process group


def _mesh_axes(mesh):
    return mesh_axes(mesh)  # strict: "domain=2;tensor=8" or "domain=2xyz" is a ValueError naming it


def _step_path(path):
    path = str(path).rstrip("/")
    if path.rsplit("/", 1)[-1].startswith("step-"):
        return path
    return f"{path}/step-{manifest(path)['step']:08d}"


def load_torch(path, mesh=None, rank=0, partition=None):
    """Whole tensors, or with `mesh` ("domain=4,tensor=2") the tiles that `rank` holds on it (partition specs
    from `partition`, else as saved). Tensors are read in parallel; a rank's own tiles on a local disk are
    mapped from the checkpoint's files instead of copied (writable: writes stay in this process)."""
    import torch
    path = _step_path(path)  # one step throughout, even if a newer one commits meanwhile
    infos = tensors(path)
    boxes = {}
    for name, info in infos.items():
        origin = shape = None
        if mesh is not None:
            spec = _spec(name, partition) if partition is not None else info["partition"]
            origin, shape = tile_of(info["shape"], spec, mesh, rank)
        boxes[name] = (origin, shape)
    out = {}
    for name, a in checkpoint_load(str(path), boxes).items():
        bf16 = infos[name]["dtype"] == "bfloat16"
        t = torch.from_numpy(a.view(np.int16) if bf16 else a)
        out[name] = t.view(torch.bfloat16) if bf16 else t
    return out
