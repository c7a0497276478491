#!/usr/bin/python3
"""bench_torch.py: the reference for bench_train's first figure, in PyTorch on CPU.

Same network and loop as tests/bench/bench_train.c section 1: 784-256-128-10
(relu, relu, identity), batch 128, Adam (lr 1e-3), softmax cross-entropy, one
epoch over Fashion-MNIST's 60000 training rows (pixels / 255, reshuffled each
epoch), best of 3 epochs, with torch's threads set to 2 (this machine's cores)
and to 1. Prints samples/s, and with --ours N (our samples/s at the same
thread count, from bench_train) the ratio ours / torch.

Needs Debian's python3-torch (apt), so run it with /usr/bin/python3: a python3
earlier on PATH (pyenv) does not see Debian's dist-packages.

  /usr/bin/python3 tests/bench/bench_torch.py [--ours N1,N2] [--dir DIR]
"""
import argparse
import gzip
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:  # not fatal: the benchmark is optional
    print(f"bench_torch: skipped ({e}); install Debian's python3-torch", file=sys.stderr)
    sys.exit(0)

BATCH = 128
REPS = 3


def read_idx(path):
    """An IDX file (gzip) as a numpy uint8 array of its dimensions."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndims = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def load(d):
    x = read_idx(os.path.join(d, "train-images-idx3-ubyte.gz")).reshape(60000, 784)
    y = read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def epoch(model, opt, x, y, seed):
    """One epoch; returns (seconds, train accuracy)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    correct = 0
    t0 = time.perf_counter()
    for i in range(0, x.shape[0], BATCH):
        idx = perm[i:i + BATCH]
        xb, yb = x[idx], y[idx]  # the gather, as train_run does
        out = model(xb)
        loss = loss_fn(out, yb)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        correct += (out.argmax(1) == yb).sum().item()
    return time.perf_counter() - t0, correct / x.shape[0]


def bench(x, y, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(7)
    best, acc = float("inf"), 0.0
    for r in range(REPS):
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        secs, acc = epoch(model, opt, x, y, r)
        best = min(best, secs)
    return x.shape[0] / best, best, acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--ours", default="", help="our samples/s at 2 and 1 threads: N2,N1")
    a = ap.parse_args()
    ours = [float(v) for v in a.ours.split(",") if v]
    x, y = load(a.dir)
    print(f"torch {torch.__version__}, 784-256-128-10 relu, batch {BATCH}, Adam, one epoch "
          f"of {x.shape[0]}, best of {REPS}")
    for k, threads in enumerate((2, 1)):
        sps, secs, acc = bench(x, y, threads)
        line = (f"  threads {threads}: {sps:.0f} samples/s (epoch {secs:.3f} s, "
                f"train acc {acc:.3f})")
        if k < len(ours):
            line += f" | ours {ours[k]:.0f} samples/s, ours/torch {ours[k] / sps:.2f}"
        print(line)


if __name__ == "__main__":
    main()
