"""PyTorch integration: an IterableDataset over a jigsaw Loader, and a jigsaw-trained WeatherMixer as a
torch module (WeatherMixer.from_checkpoint).

Each item is one batch as a torch tensor [batch, 1 + lead_steps, channels, lat, lon] (float32, or bfloat16
when the loader was opened with dtype="bfloat16"), shared with the loader's buffer without a copy. Use it
with DataLoader(dataset, batch_size=None): batching and prefetching already happen in jigsaw.
"""
import json

import torch

from . import Loader


class TileDataset(torch.utils.data.IterableDataset):
    def __init__(self, url, **loader_options):
        super().__init__()
        self.url = url
        self.options = loader_options
        self.loader = None

    def _open(self):
        if self.loader is None:
            self.loader = Loader(self.url, **self.options)
        return self.loader

    def __len__(self):
        return self._open().batches_per_epoch

    def __getstate__(self):
        # Picklable (DataLoader's spawn start method pickles the dataset): the loader, threads and buffers
        # of this process, stays behind.
        state = dict(self.__dict__)
        state["loader"] = None
        return state

    def __iter__(self):
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "jigsaw.torch.TileDataset reads, decodes and prefetches on threads of its own and yields whole "
                "batches: use DataLoader(dataset, batch_size=None, num_workers=0). Worker processes would each "
                "read every sample (each batch twice with 2 workers)")
        loader = self._open()
        bf16 = self.options.get("dtype") == "bfloat16"
        for array in loader:
            if bf16:  # bfloat16 bits arrive as uint16, which torch.from_numpy refuses before torch 2.3: as int16
                yield torch.from_numpy(array.view("int16")).view(torch.bfloat16)
            else:
                yield torch.from_numpy(array)

    @property
    def channels(self):
        """This rank's channel names, in the order of a batch's channel dimension."""
        return list(self._open().channels)

    @property
    def tile_shape(self):
        """This rank's tile [channels, lat, lon]: a batch is [batch, 1 + lead_steps, *tile_shape]."""
        return list(self._open().tile_shape)

    @property
    def static_tile(self):
        """This rank's time-independent fields [static channels, lat, lon] as a float32 tensor (empty along
        the first dimension for a store without them): extra input channels, the same for every sample."""
        return torch.from_numpy(self._open().static_tile)

    def state_dict(self):
        return self._open().state()

    def load_state_dict(self, state):
        self._open().restore(state)


# ---- A jigsaw-trained WeatherMixer as a torch module ----

def _read_safetensors(path):
    """{name: float32 NumPy array}, and the header's __metadata__ (strings), of a safetensors file."""
    import struct

    import numpy as np

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {e['dtype']}, not F32")
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"]).copy()
    return out, meta


def _read_checkpoint(path):
    """The weights and the description of a jigsaw-train checkpoint (a root, its LATEST step, or a step)."""
    from . import checkpoint

    path = checkpoint._step_path(path)  # one step throughout, even if a newer one commits meanwhile
    m = checkpoint.manifest(path)
    run = m.get("metadata", {}).get("jigsaw_train")
    if run is None:
        raise ValueError(f"{path}: not a jigsaw-train checkpoint")
    if "domain_lat" not in [axis for axis, _ in m["mesh"]]:
        raise ValueError(f"{path}: made before the stored layout (mesh {m['mesh']}): export it with "
                         f"`jigsaw-ckpt export {path} --out model.safetensors`, which puts its tokens by patch "
                         f"position, and load that")
    if not isinstance(run.get("data_contract"), dict):
        raise ValueError(f"{path}: records no data contract; export it with `jigsaw-ckpt export ... --data STORE`")
    names = [n for n in m["tensors"] if not n.startswith("adam_")]
    arrays = checkpoint.checkpoint_load(str(path), {n: (None, None) for n in names})
    description = {"model": run["model"], "data": run["data_contract"], "step": m["step"]}
    return arrays, description


class WeatherMixer(torch.nn.Module):
    """A WeatherMixer trained by jigsaw, as a torch module: forward(x) takes a state [B, C, H, W] in physical
    units (the channels in the model's order, `channels`) and returns the state one time step
    (`step_seconds`) later, in physical units. Inside, states are normalised by the training store's
    statistics and the model predicts x + f(x).

        model = WeatherMixer.from_checkpoint("model.safetensors")   # or a jigsaw-train checkpoint directory
        x1 = model(x0)                        # [B, C, H, W] -> [B, C, H, W]
        xs = model.rollout(x0, steps=4)       # [B, 4, C, H, W]: the states 1..4 steps on

    A model with static input fields (land-sea mask, orography: `static_channels`) takes them as
    `static` [S, H, W] in physical units, given to forward/rollout or set once as `model.static`.
    Parameters have the names and layouts of the export (README, "Exported models"): token-mix weights
    by patch position [patch_row, patch_col, ...], token features (channel, py, px)."""

    def __init__(self, model, data, step=0):
        super().__init__()
        nn = torch.nn
        self.config, self.data, self.step = dict(model), dict(data), int(step)
        c, h, w = model["channels"], model["height"], model["width"]
        ph, pw = model["patch_h"], model["patch_w"]
        s = model.get("static_channels", 0)
        d, hs, hf = model["dim"], model["token_hidden"], model["channel_hidden"]
        if h % ph or w % pw:
            raise ValueError(f"a {h}x{w} grid is not whole {ph}x{pw} patches")
        if len(data["channels"]) != c or len(data.get("static_channels", [])) != s:
            raise ValueError(f"the data contract lists {len(data['channels'])} channels and "
                             f"{len(data.get('static_channels', []))} static fields; the model takes {c} and {s}")
        self.shape, self.patch, self.eps = (c, h, w), (ph, pw), float(model.get("ln_eps", 1e-5))
        self.channels, self.static_channels = list(data["channels"]), list(data.get("static_channels", []))
        self.step_seconds = int(data["step_seconds"])
        pr, pc = h // ph, w // pw
        zeros = lambda *shape: nn.Parameter(torch.zeros(*shape))  # noqa: E731
        self.embed_w, self.embed_b = zeros(c, ph * pw, d), zeros(d)
        self.blocks = nn.ModuleList()
        for _ in range(model["depth"]):
            b = nn.Module()
            b.token_norm_w, b.token_norm_b = zeros(d), zeros(d)
            b.token_w1, b.token_b1 = zeros(pr, pc, hs), zeros(hs)
            b.token_w2, b.token_b2 = zeros(hs, pr, pc), zeros(pr, pc)
            b.channel_norm_w, b.channel_norm_b = zeros(d), zeros(d)
            b.channel_w1, b.channel_b1 = zeros(d, hf), zeros(hf)
            b.channel_w2, b.channel_b2 = zeros(hf, d), zeros(d)
            self.blocks.append(b)
        self.head_norm_w, self.head_norm_b = zeros(d), zeros(d)
        self.head_w, self.head_b = zeros(d, c, ph * pw), zeros(c, ph * pw)
        if s:
            self.static_w = zeros(s, ph * pw, d)
        f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
        std = f64(data["std"])
        self.register_buffer("mean", f64(data["mean"]), persistent=False)
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)), persistent=False)
        if s:
            sstd = f64(data["static_std"])
            self.register_buffer("static_mean", f64(data["static_mean"]), persistent=False)
            self.register_buffer("static_std", torch.where(sstd > 0, sstd, torch.ones_like(sstd)), persistent=False)
        self.static = None

    @classmethod
    def from_checkpoint(cls, path, map_location="cpu"):
        """A model from `jigsaw-ckpt export` output (a .safetensors file) or a jigsaw-train checkpoint
        (its root, for LATEST, or a step directory), trained on any mesh."""
        import os

        path = os.fspath(path)
        if os.path.isfile(path):
            arrays, meta = _read_safetensors(path)
            if "jigsaw" not in meta:
                raise ValueError(f"{path}: no __metadata__['jigsaw'] (not a jigsaw-ckpt export of a jigsaw-train "
                                 f"checkpoint)")
            description = json.loads(meta["jigsaw"])
            if description.get("format") != "jigsaw-weathermixer":
                raise ValueError(f"{path}: describes a {description.get('format')!r}, not a jigsaw-weathermixer")
        else:
            arrays, description = _read_checkpoint(path)
        module = cls(description["model"], description["data"], description.get("step", 0))
        state = {k: torch.from_numpy(v) for k, v in arrays.items() if not k.startswith("adam_")}
        module.load_state_dict(state, strict=True)
        return module.to(map_location)

    def _tokens(self, x):  # [B, K, H, W] -> [B, T, K ph pw], tokens row-major by patch position
        b, k, h, w = x.shape
        ph, pw = self.patch
        return x.reshape(b, k, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, k * ph * pw)

    def _image(self, y):  # [B, T, C ph pw] -> [B, C, H, W]
        c, h, w = self.shape
        ph, pw = self.patch
        b = y.shape[0]
        return y.reshape(b, h // ph, w // pw, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def tendency(self, z, static=None):
        """f(z) for normalised states z [B, C, H, W] (and the normalised static fields [S, H, W])."""
        F = torch.nn.functional
        ln = lambda t, g, b: F.layer_norm(t, (t.shape[-1],), g, b, eps=self.eps)  # noqa: E731
        c, h, w = self.shape
        t = self._tokens(z) @ self.embed_w.reshape(-1, self.embed_w.shape[-1]) + self.embed_b
        if self.static_channels:
            if static is None:
                raise ValueError(f"this model takes static fields {self.static_channels}: pass static=[S, H, W]")
            t = t + self._tokens(static[None]) @ self.static_w.reshape(-1, self.static_w.shape[-1])
        tokens = t.shape[1]
        for b in self.blocks:
            u = ln(t, b.token_norm_w, b.token_norm_b)                                   # [B, T, D]
            mixed = torch.einsum("btd,th->bhd", u, b.token_w1.reshape(tokens, -1)) + b.token_b1[:, None]
            t = t + torch.einsum("bhd,ht->btd", F.gelu(mixed), b.token_w2.reshape(-1, tokens)) \
                + b.token_b2.reshape(tokens)[:, None]
            v = ln(t, b.channel_norm_w, b.channel_norm_b)
            t = t + F.gelu(v @ b.channel_w1 + b.channel_b1) @ b.channel_w2 + b.channel_b2
        y = ln(t, self.head_norm_w, self.head_norm_b) @ self.head_w.reshape(t.shape[-1], -1) + self.head_b.reshape(-1)
        return self._image(y)

    def _normalised_static(self, static):
        static = self.static if static is None else static
        if static is None or not self.static_channels:
            return None
        s = torch.as_tensor(static, dtype=torch.float64, device=self.mean.device)
        return ((s - self.static_mean[:, None, None]) / self.static_std[:, None, None]).to(self.embed_w.dtype)

    def normalise(self, x):
        return ((x.double() - self.mean[:, None, None]) / self.std[:, None, None]).to(self.embed_w.dtype)

    def denormalise(self, z):
        return (z.double() * self.std[:, None, None] + self.mean[:, None, None]).to(self.embed_w.dtype)

    def forward(self, x, static=None):
        """The state one step on, [B, C, H, W] -> [B, C, H, W], in physical units."""
        z = self.normalise(x)
        return self.denormalise(z + self.tendency(z, self._normalised_static(static)))

    def rollout(self, x, steps, static=None):
        """The states 1..steps time steps on, [B, C, H, W] -> [B, steps, C, H, W] (physical units), applied
        in normalised units as jigsaw-rollout does."""
        z, st, out = self.normalise(x), self._normalised_static(static), []
        for _ in range(steps):
            z = z + self.tendency(z, st)
            out.append(self.denormalise(z))
        return torch.stack(out, dim=1)
