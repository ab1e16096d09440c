"""Can a small CNN learn the default generated cohort, and does the injected skin-tone gap show?

Trains a 3-layer CNN (16-32-64 channels) for 4 epochs on 2,200 default 64x64 images (one CPU thread)
and prints the test AUC overall, on FST 1-2 and on FST 5-6 after each epoch, against chance (0.5).

Run: .venv/bin/python benchmarks/synth_learnability.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from fairmed.data.synth import SynthConfig, generate


def main(n: int = 3000, n_train: int = 2200, epochs: int = 4) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cohort = generate(SynthConfig(n=n, size=64), seed=0)
    x = torch.tensor(cohort.images).permute(0, 3, 1, 2).float() / 255.0
    y = torch.tensor(cohort.y()).float()
    fst = cohort.table["fst"].to_numpy()
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    test = np.arange(n_train, n)
    yt, ft = y[test].numpy(), fst[test]
    start = time.perf_counter()
    print(f"{'epoch':>5s} {'AUC':>6s} {'FST 1-2':>8s} {'FST 5-6':>8s} {'seconds':>8s}   (chance = 0.5)")
    for epoch in range(epochs):
        for batch in torch.randperm(n_train).split(64):
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[batch]).squeeze(1), y[batch])
            loss.backward()
            opt.step()
        with torch.no_grad():
            s = net(x[test]).squeeze(1).numpy()
        light, dark = ft <= 2, ft >= 5
        print(
            f"{epoch + 1:5d} {roc_auc_score(yt, s):6.3f} {roc_auc_score(yt[light], s[light]):8.3f}"
            f" {roc_auc_score(yt[dark], s[dark]):8.3f} {time.perf_counter() - start:8.1f}"
        )


if __name__ == "__main__":
    main()
