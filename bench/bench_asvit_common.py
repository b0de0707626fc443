"""Shared pieces of the As-ViT benches: the digits topology space, from-scratch training, Kendall τ.

Every topology is trained alone from scratch with one recipe (AdamW, lr 2e-3, weight decay 0.05,
batch 64, cosine decay to 0 over ``epochs``, no augmentation) on the digits train split and
scored on the search-validation and test splits together (540 images: 270 alone make top-1
accuracy a coarse, tie-prone score).  The network is :func:`build_network` of the arch — the
same randomly initialised network the proxies measure (with its norms kept).
"""
from __future__ import annotations

import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPACE = os.path.join(ROOT, "examples", "digits-asvit.space")


def load_space(path: str = SPACE, allow_global: bool = True):
    """The digits As-ViT space; if attention splits are not compiled yet, its window-free variant."""
    import spacelang as sl
    from spacelang.compiler.proxies import build_network
    from spacelang.errors import CompileError
    space = sl.load(path)
    probe = {**space.min_arch(), "s1.split": 2}
    try:
        build_network(space, probe, 0)
        return space, True
    except CompileError:
        if not allow_global:
            raise
    text = re.sub(r"let split = \{[^}]*\}", "let split = 1", space.source)
    return sl.loads(text, filename=path + " (splits 1: not compiled yet)"), False


def digits_tensors(resolution: int = 32):
    """Digits train and val+test tensors at ``resolution``² (bilinear resize of the 8×8 images)."""
    import torch
    from spacelang.compiler.data import digits
    d = digits(1, resolution)
    xtr, ytr = d.train.tensors
    xev = torch.cat([d.val.tensors[0], d.test.tensors[0]])
    yev = torch.cat([d.val.tensors[1], d.test.tensors[1]])
    return xtr, ytr, xev, yev


def train_from_scratch(space, arch, seed: int, epochs: int, data, lr: float = 2e-3, batch: int = 64):
    """(accuracy %, mean cross-entropy) on val+test after training ``arch`` alone from scratch."""
    import torch
    import torch.nn.functional as F
    from spacelang.compiler.proxies import build_network
    xtr, ytr, xev, yev = data
    net = build_network(space, arch, seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.05)
    steps_per_epoch = len(xtr) // batch
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        logits = net(xev)
    return float((logits.argmax(1) == yev).float().mean()) * 100, float(F.cross_entropy(logits, yev))


def kendall(a, b) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(a, b).statistic)
