#!/usr/bin/python3
"""The PyTorch oracle of WeatherMixer (docs/models.md, docs/parallelism.md): the model written plainly in torch, its
gradients by torch.autograd and its optimiser by torch.optim.AdamW. jigsaw's native trainer is checked
against what this file writes (llm.c's habit): weights, a batch, the loss, every gradient, and the
losses and weights after a few AdamW steps, in one safetensors file.

Run with Debian's Python (/usr/bin/python3, python3-torch):
  oracle.py OUT.safetensors [--seed 1] [--grid 8x16] [--channels 3] [--patch 2x2] [--dim 8] ...

Tensor names in the file:
  param/<name>   the initial weights (the state_dict names jigsaw exports under)
  grad/<name>    d loss / d weight at the initial weights, for the batch x0 -> x1
  after/<name>   the weights after `--steps` AdamW steps (the same batch every step)
  static         [S, H, W] the time-independent input of every sample (with --statics S > 0)
  x0             [batch, C, H, W] inputs; x1 [batch, K, C, H, W] the targets of K autoregressive steps; lat [H] latitudes (degrees, north to south);
  channel_weight [C]; losses [steps + 1] (the loss before each step and after the last)
  grad_norm [steps] (the global gradient norm each step, before clipping)
The model and optimiser settings are in the header's __metadata__ (strings), read by the C++ tests.
"""
import argparse
import json
import math
import struct
import sys

import torch
import torch.nn as nn


def split_len(n, p):
    return (n + p - 1) // p


class WeatherMixer(nn.Module):
    """Per sample: x [C, H, W] -> prediction x + tendency. Tokens are the ph x pw patches by position,
    row-major over the patch grid [H/ph, W/pw]: token-mix weights are stored [PR, PC, Hs], [Hs, PR, PC] and
    [PR, PC] (patch rows, patch columns), whatever mesh a model was trained on. Token features are ordered
    (channel, py, px). No domain grid or mesh appears here: the oracle shares no run convention with
    jigsaw."""

    def __init__(self, c, h, w, ph, pw, dim, depth, token_hidden, channel_hidden, statics=0):
        super().__init__()
        self.c, self.h, self.w, self.ph, self.pw = c, h, w, ph, pw
        self.statics, self.static = statics, None  # S static input channels; the [S, H, W] input, set by the caller
        pr, pc = h // ph, w // pw
        P = lambda *shape: nn.Parameter(torch.zeros(*shape))
        # Token-feature dimensions are stored [C, ph pw] (jigsaw's checkpoints split them by channel group).
        self.embed_w, self.embed_b = P(c, ph * pw, dim), P(dim)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            b = nn.Module()
            b.token_norm_w, b.token_norm_b = P(dim), P(dim)
            b.token_w1, b.token_b1 = P(pr, pc, token_hidden), P(token_hidden)
            b.token_w2, b.token_b2 = P(token_hidden, pr, pc), P(pr, pc)
            b.channel_norm_w, b.channel_norm_b = P(dim), P(dim)
            b.channel_w1, b.channel_b1 = P(dim, channel_hidden), P(channel_hidden)
            b.channel_w2, b.channel_b2 = P(channel_hidden, dim), P(dim)
            self.blocks.append(b)
        self.head_norm_w, self.head_norm_b = P(dim), P(dim)
        self.head_w, self.head_b = P(dim, c, ph * pw), P(c, ph * pw)
        if statics:  # registered last: the other parameters keep their places
            self.static_w = P(statics, ph * pw, dim)

    def patchify(self, x):  # [C, H, W] -> [T, C ph pw] (any number of channels C), tokens row-major
        c, ph, pw = x.shape[0], self.ph, self.pw
        return x.reshape(c, self.h // ph, ph, self.w // pw, pw).permute(1, 3, 0, 2, 4).reshape(-1, c * ph * pw)

    def unpatchify(self, y):  # inverse of patchify
        c, ph, pw = self.c, self.ph, self.pw
        return y.reshape(self.h // ph, self.w // pw, c, ph, pw).permute(2, 0, 3, 1, 4).reshape(c, self.h, self.w)

    def forward(self, x):
        ln = lambda z, g, b: torch.nn.functional.layer_norm(z, (z.shape[-1],), g, b, eps=1e-5)
        gelu = lambda a: torch.nn.functional.gelu(a)  # erf form
        f = self.c * self.ph * self.pw
        z = self.patchify(x) @ self.embed_w.reshape(f, -1) + self.embed_b
        if self.statics:
            z = z + self.patchify(self.static) @ self.static_w.reshape(self.statics * self.ph * self.pw, -1)
        for b in self.blocks:
            u = ln(z, b.token_norm_w, b.token_norm_b)
            t = u.shape[0]
            ht = gelu(b.token_w1.reshape(t, -1).t() @ u + b.token_b1[:, None])  # [Hs, D]
            z = z + b.token_w2.reshape(-1, t).t() @ ht + b.token_b2.reshape(t)[:, None]
            v = ln(z, b.channel_norm_w, b.channel_norm_b)
            z = z + gelu(v @ b.channel_w1 + b.channel_b1) @ b.channel_w2 + b.channel_b2
        y = ln(z, self.head_norm_w, self.head_norm_b) @ self.head_w.reshape(-1, f) + self.head_b.reshape(f)
        return x + self.unpatchify(y)


def is_matrix(name):
    """The weight matrices (decayed by AdamW); biases and LayerNorm gains are vectors whatever their shape
    (head_b [C, ph pw] and token_b2 [PR, PC] are stored with two dimensions)."""
    return name.endswith(("_w", "_w1", "_w2")) and not name.endswith("norm_w")


def latitude_weights(lat_deg):
    """WeatherBench2's cell-area weights: sin(upper edge) - sin(lower edge), edges half way between rows
    and clipped to the poles, over their mean."""
    lat = torch.tensor(lat_deg, dtype=torch.float64)
    n = len(lat)
    edges = torch.empty(n + 1, dtype=torch.float64)
    edges[1:-1] = (lat[1:] + lat[:-1]) / 2
    edges[0] = 90.0 if lat[0] > lat[-1] else -90.0
    edges[-1] = -edges[0]
    area = (torch.sin(torch.deg2rad(edges[:-1])) - torch.sin(torch.deg2rad(edges[1:]))).abs()
    return (area / area.mean()).float()


def loss_fn(model, x0, x1, w_lat, w_c):
    """The mean over samples and rollout steps: x1 is [B, C, H, W] (one step) or [B, K, C, H, W], the truth
    after each of K autoregressive applications of the model."""
    if x1.dim() == 4:
        x1 = x1[:, None]
    c, h, w = x0.shape[1:]
    steps = x1.shape[1]
    total = 0
    for b in range(x0.shape[0]):
        state = x0[b]
        for k in range(steps):
            state = model(state)
            err = (state - x1[b, k]) ** 2
            total = total + (w_lat[None, :, None] * w_c[:, None, None] * err).sum() / (c * h * w)
    return total / (x0.shape[0] * steps)


def learning_rate(step, lr, min_lr, warmup, total):
    """Linear warm-up over `warmup` steps (step 0 runs at lr/warmup), then cosine from lr to min_lr at
    step `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def init_uniform(seed, shape, bound):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).mul(bound).float()


def save_safetensors(path, tensors, metadata):
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    offset, blobs = 0, []
    for name, t in tensors.items():
        data = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--grid", default="8x16", help="H x W")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--patch", default="2x2")
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--token-hidden", type=int, default=12)
    p.add_argument("--channel-hidden", type=int, default=16)
    p.add_argument("--statics", type=int, default=0, help="S static input channels (embedded by static_w)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rollout-steps", type=int, default=1, help="K: the loss of K autoregressive applications")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--min-lr", type=float, default=1e-3)
    p.add_argument("--embed-lr-scale", type=float, default=0.5, help="learning-rate factor of embedding and head")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--total-steps", type=int, default=5)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=0.5)
    a = p.parse_args()

    h, w = map(int, a.grid.split("x"))
    ph, pw = map(int, a.patch.split("x"))
    c = a.channels
    torch.manual_seed(a.seed)
    m = WeatherMixer(c, h, w, ph, pw, a.dim, a.depth, a.token_hidden, a.channel_hidden, a.statics)
    # Random weights everywhere (gains and biases too, so that every gradient path is exercised).
    with torch.no_grad():
        for i, (name, prm) in enumerate(m.named_parameters()):
            fan_in = (prm[..., 0].numel() if name.endswith(("embed_w", "static_w", "token_w1")) else prm.shape[0]) \
                if is_matrix(name) else 4
            prm.copy_(init_uniform(a.seed * 1000 + i, prm.shape, 1 / math.sqrt(fan_in)))
            if name.endswith("norm_w"):
                prm.add_(1.0)
    lat = [90 - 180 * (i + 0.5) / h for i in range(h)]
    w_lat = latitude_weights(lat)
    w_c = torch.linspace(0.5, 1.5, c)
    g = torch.Generator().manual_seed(a.seed + 7)
    x0 = torch.randn(a.batch, c, h, w, generator=g)
    if a.statics:
        m.static = torch.randn(a.statics, h, w, generator=torch.Generator().manual_seed(a.seed + 11))
    x1 = torch.empty(a.batch, a.rollout_steps, c, h, w)
    prev = x0
    for k in range(a.rollout_steps):
        x1[:, k] = prev = prev + 0.3 * torch.randn(a.batch, c, h, w, generator=g)

    names = [n for n, _ in m.named_parameters()]
    params = dict(m.named_parameters())
    out = {f"param/{n}": prm.detach().clone() for n, prm in params.items()}
    embed_head = [n for n in names if n.startswith(("embed_", "head_w", "head_b", "static_w"))]
    groups = []
    for scale, members in ((a.embed_lr_scale, embed_head), (1.0, [n for n in names if n not in embed_head])):
        for decay in (True, False):
            ps = [params[n] for n in members if is_matrix(n) == decay]
            if ps:
                groups.append({"params": ps, "scale": scale, "weight_decay": a.weight_decay if decay else 0.0})
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    losses, norms = [], []
    for step in range(a.steps):
        opt.zero_grad()
        loss = loss_fn(m, x0, x1, w_lat, w_c)
        loss.backward()
        if step == 0:
            for n, prm in params.items():
                out[f"grad/{n}"] = prm.grad.detach().clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), a.clip)))
        lr = learning_rate(step, a.lr, a.min_lr, a.warmup, a.total_steps)
        for grp in opt.param_groups:
            grp["lr"] = lr * grp["scale"]
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        losses.append(float(loss_fn(m, x0, x1, w_lat, w_c)))
    for n, prm in params.items():
        out[f"after/{n}"] = prm.detach().clone()
    out.update({"x0": x0, "x1": x1, "lat": torch.tensor(lat), "channel_weight": w_c,
                "losses": torch.tensor(losses), "grad_norm": torch.tensor(norms)})
    if a.statics:
        out["static"] = m.static
    meta = dict(grid=a.grid, channels=c, patch=a.patch, dim=a.dim, depth=a.depth,
                token_hidden=a.token_hidden, channel_hidden=a.channel_hidden, statics=a.statics, batch=a.batch,
                steps=a.steps,
                rollout_steps=a.rollout_steps,
                lr=a.lr, min_lr=a.min_lr, embed_lr_scale=a.embed_lr_scale, warmup=a.warmup,
                total_steps=a.total_steps, weight_decay=a.weight_decay, clip=a.clip, beta1=0.9, beta2=0.95,
                eps=1e-8)
    save_safetensors(a.out, out, meta)
    print(json.dumps({"losses": losses, "grad_norm": norms}))


if __name__ == "__main__":
    sys.exit(main())
