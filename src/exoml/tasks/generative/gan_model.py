"""The DCGAN for 28x28 digits: generator, discriminator (spectral norm, optional projection for the
conditional model), the two losses, the EMA of G's weights and sampling. Training is in gan.py."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ...toolkit import train


class Generator(nn.Module):
    """z -> linear -> 4w x 7 x 7 -> [up x2] 2w x 14 x 14 -> [up x2] 1 x 28 x 28 (tanh); `depth` adds that
    many 3x3 conv-BN-ReLU layers at 7x7 and at 14x14 (and a 3x3 output conv at 28x28)."""

    def __init__(self, z_dim: int, width: int, conditional: bool, depth: int = 0):
        super().__init__()
        self.z_dim, self.conditional = z_dim, conditional
        w = width
        block = lambda c: [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]  # noqa: E731
        layers = [nn.Linear(z_dim + (10 if conditional else 0), 4 * w * 7 * 7, bias=False),
                  nn.Unflatten(1, (4 * w, 7, 7)), nn.BatchNorm2d(4 * w), nn.ReLU(True)]
        layers += [m for _ in range(depth) for m in block(4 * w)]
        layers += [nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True)]  # 14x14
        layers += [m for _ in range(depth) for m in block(2 * w)]
        if depth:
            layers += [nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
                       nn.Conv2d(w, 1, 3, 1, 1)]                                                          # 28x28
        else:
            layers += [nn.ConvTranspose2d(2 * w, 1, 4, 2, 1)]                                             # 28x28
        self.net = nn.Sequential(*layers, nn.Tanh())

    def forward(self, z, y=None):
        return self.net(torch.cat([z, F.one_hot(y, 10).to(z.dtype)], 1) if self.conditional else z)


class Discriminator(nn.Module):
    """Two strided 4x4 convs (28 -> 14 -> 7, LeakyReLU 0.2) and a linear logit; `depth` adds that many
    3x3 convs at each resolution. Spectral norm on every layer when `sn`."""

    def __init__(self, width: int, conditional: bool, sn: bool, depth: int = 0):
        super().__init__()
        norm = spectral_norm if sn else (lambda m: m)
        w = width
        conv = lambda a, b, k=3, s=1: [norm(nn.Conv2d(a, b, k, s, 1)), nn.LeakyReLU(0.2, True)]  # noqa: E731
        layers = conv(1, w) if depth else []
        layers += conv(w if depth else 1, w, 4, 2)                                    # 14x14
        layers += [m for _ in range(depth) for m in conv(w, w)]
        layers += conv(w, 2 * w, 4, 2)                                                # 7x7
        layers += [m for _ in range(depth) for m in conv(2 * w, 2 * w)]
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = norm(nn.Linear(2 * w * 7 * 7, 1))
        self.embed = norm(nn.Embedding(10, 2 * w * 7 * 7)) if conditional else None

    def forward(self, x, y=None):
        h = self.body(x)
        out = self.head(h).squeeze(1)
        return out + (self.embed(y) * h).sum(1) if self.embed is not None else out  # projection term


def d_loss_fn(name: str, real_label: float):
    bce = train.make_loss("bce")
    if name == "hinge":
        return lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return lambda r, f: bce(r, torch.full_like(r, real_label)) + bce(f, torch.zeros_like(f))


def g_loss_fn(name: str):
    bce = train.make_loss("bce")
    return (lambda f: -f.mean()) if name == "hinge" else (lambda f: bce(f, torch.ones_like(f)))


def ema_multi_avg(decay: float):
    """Moving average of weights with a warm-up (as TensorFlow's ExponentialMovingAverage): the
    decay is (1 + n) / (10 + n) after n updates until it reaches `decay`, so a short run is not
    averaged with its random initial weights. AveragedModel's multi_avg_fn: three foreach ops over
    all tensors per step instead of three ops per tensor."""
    @torch.no_grad()
    def avg(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor):
        d = ((1 + n) / (10 + n)).clamp(max=decay).to(averaged[0].dtype)
        torch._foreach_mul_(averaged, d)
        torch._foreach_add_(averaged, torch._foreach_mul(current, 1 - d))
    return avg


@torch.no_grad()
def recalibrate_bn(g: Generator, batches: int = 8, batch_size: int = 256) -> Generator:
    """Recompute G's BatchNorm statistics for its current weights. Averaged weights never ran in
    training, so no running statistics were collected for them; without this, eval-mode samples
    come out washed out or striped early in a run."""
    device = next(g.parameters()).device
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
    g.train()
    for _ in range(batches):
        y = torch.randint(0, 10, (batch_size,), device=device) if g.conditional else None
        g(torch.randn(batch_size, g.z_dim, device=device), y)
    return g.eval()


@torch.no_grad()
def sample(g: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000,
           precision: str = "cuda") -> np.ndarray:
    """uint8 digits (N, 28, 28) from generator g for noise z (and labels y); precision as
    toolkit.train.autocast's (default: bf16 on CUDA only)."""
    g.eval()
    out = []
    for i in range(0, len(z), batch_size):
        with train.autocast(z.device, precision):
            x = g(z[i:i + batch_size], None if y is None else y[i:i + batch_size]).float()
        out.append(((x[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu())
    return torch.cat(out).numpy()
