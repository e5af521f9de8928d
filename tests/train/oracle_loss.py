#!/usr/bin/python3
"""The PyTorch oracle on weights jigsaw trained: loads a safetensors export of a jigsaw-train checkpoint
into the oracle model (tests/train/oracle.py) by its state_dict names and prints the loss of one normalised
sample (x0 = data[0], x1 = data[1] of the .npz: data, mean, std, latitude, channels, tiles, and for a model
with static channels static, static_mean, static_std, normalised as the data); with
--forecast OUT.npy, also writes the one-step forecast of data[0] in physical units.

  oracle_loss.py MODEL.safetensors SAMPLE.npz MODEL.json [--forecast OUT.npy]
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import WeatherMixer, latitude_weights, loss_fn  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"]).copy())
    return out


def main():
    weights, sample, config = sys.argv[1], np.load(sys.argv[2]), json.load(open(sys.argv[3]))
    data = sample["data"].astype(np.float64)
    mean, std = sample["mean"][None, :, None, None], sample["std"][None, :, None, None]
    x = torch.from_numpy(((data - mean) / std).astype(np.float32))
    channels = list(sample["channels"])
    c, h, w = x.shape[1:]
    ph, pw = config["patch"]
    statics = sample["static"].shape[0] if "static" in sample else 0
    m = WeatherMixer(c, h, w, ph, pw, config["dim"], config["depth"], config["token_hidden"], config["channel_hidden"],
                     statics)
    if statics:
        sd = np.where(sample["static_std"] > 0, sample["static_std"], 1.0)[:, None, None]
        m.static = torch.from_numpy(((sample["static"] - sample["static_mean"][:, None, None]) / sd).astype(np.float32))
    state = {k: v for k, v in read_safetensors(weights).items() if not k.startswith("adam_")}
    m.load_state_dict(state, strict=True)
    w_c = torch.tensor([config.get("channel_weights", {}).get(n, 1.0) for n in channels], dtype=torch.float32)
    with torch.no_grad():
        loss = loss_fn(m, x[0:1], x[1:2], latitude_weights(list(sample["latitude"])), w_c)
        if len(sys.argv) == 6 and sys.argv[4] == "--forecast":
            pred = m(x[0]).double().numpy() * sample["std"][:, None, None] + sample["mean"][:, None, None]
            np.save(sys.argv[5], pred.astype(np.float32))
    print(f"{float(loss):.9g}")


if __name__ == "__main__":
    main()
