"""Trains a small PyTorch model on the quickstart store for a few steps, with the 4 ranks of a 1x2x2
Jigsaw grid simulated as 4 processes. Each process reads only its own tile through jigsaw.torch and trains
a per-tile model (a 1x1 convolution from x(t) to x(t + 6h) - x(t) over its channels); real Jigsaw training
would exchange activations between ranks, which these processes do not.

usage: /usr/bin/python3 examples/train_torch.py STORE [--steps N]    (PYTHONPATH=build/python)
"""
import argparse
import sys

import torch
import torch.multiprocessing as mp

import jigsaw.torch as jt


def train(rank, store, steps, results):
    torch.manual_seed(rank)
    data = jt.TileDataset(store, rank=rank, batch_size=2, lead_steps=1, normalize=True, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    channels = data.tile_shape[0]
    model = torch.nn.Conv2d(channels, channels, kernel_size=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    step = 0
    while step < steps:
        for batch in loader:          # [batch, 2, channels, lat, lon]
            x, y = batch[:, 0], batch[:, 1]
            loss = torch.nn.functional.mse_loss(model(x), y - x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step == steps:
                break
    results[rank] = (losses[0], losses[-1], data.state_dict())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--ranks", type=int, default=4)
    a = p.parse_args()
    with mp.Manager() as manager:
        results = manager.dict()
        procs = [mp.Process(target=train, args=(r, a.store, a.steps, results)) for r in range(a.ranks)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        if any(proc.exitcode != 0 for proc in procs):
            sys.exit("a rank failed")
        for r in range(a.ranks):
            first, last, state = results[r]
            print(f"rank {r}: loss {first:.4f} -> {last:.4f} after {a.steps} steps; loader at {state}")


if __name__ == "__main__":
    main()
