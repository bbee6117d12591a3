"""Image augmentation as batched tensor ops (after cifar10-airbench): one call per batch, on
whatever device the batch is on, no per-image Python loop. x is float (N, C, H, W) in [0, 1]."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def flip(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror left-right the images where mask is True (default: a coin flip each)."""
    if mask is None:
        mask = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def translate(x: torch.Tensor, pad: int, mode: str = "reflect") -> torch.Tensor:
    """Random crop of the padded image = a random shift of up to `pad` pixels each way, per image."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (pad,) * 4, mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return xp.gather(2, rows).gather(3, cols)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """The images scaled to size x size pixels (bilinear, antialiased when shrinking); 0: unchanged."""
    if size <= 0 or x.shape[-2:] == (size, size):
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
        memory_format=torch.channels_last) else out


def affine(x: torch.Tensor, degrees: float, scale: float, shift: float) -> torch.Tensor:
    """Random rotation (+-degrees), zoom (1 +- scale) and shift (+- fraction of the side) per image,
    one grid_sample for the batch; outside pixels are 0 (the black MNIST background)."""
    n = len(x)
    a = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(degrees)
    s = 1 + (torch.rand(n, device=x.device) * 2 - 1) * scale
    t = (torch.rand(n, 2, device=x.device) * 2 - 1) * shift * 2  # grid units: the side is 2 long
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def stroke(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Change the stroke width of a random `prob` share of the images (light strokes on a dark
    background), each by one of: thinner by a pixel on each side (a cross-shaped erosion), thicker by
    one pixel on each side (a 3x3 dilation) or by two along rows and columns, one and a half along
    diagonals (that, then a cross-shaped one). A marker or a bold font draws digits several pixels
    wider than MNIST's pens did. MNIST's strokes are about 3 pixels wide with grey edges: thinned,
    a digit keeps about a third of its ink (the median), and 2.6% of them less than a tenth."""
    if prob <= 0:
        return x
    n = len(x)

    def cross_max(t):  # the largest of each pixel and its 4 neighbours
        return torch.maximum(F.max_pool2d(t, (3, 1), 1, (1, 0)), F.max_pool2d(t, (1, 3), 1, (0, 1)))
    thin = -cross_max(-x)
    thick = F.max_pool2d(x, 3, 1, 1)
    thicker = cross_max(thick)
    change = torch.rand(n, device=x.device) < prob
    kind = torch.randint(0, 3, (n,), device=x.device).view(-1, 1, 1, 1)
    changed = torch.where(kind == 0, thin, torch.where(kind == 1, thick, thicker))
    return torch.where(change.view(-1, 1, 1, 1), changed, x)


def cutout(x: torch.Tensor, size: int, fill: torch.Tensor) -> torch.Tensor:
    """Blank one size x size square per image (centre anywhere, so squares may be clipped) with `fill`."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys, xs = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    half = size // 2
    mask = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
    return torch.where(mask.unsqueeze(1), fill.to(x.dtype), x)


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, prob: float):
    """With probability `prob` per batch, paste a random box of a shuffled partner image into each
    image; targets become class probabilities weighted by the pasted area (Yun et al. 2019)."""
    target = F.one_hot(y, num_classes).float()
    if prob <= 0 or np.random.random() >= prob:  # numpy draws: no GPU sync per step
        return x, target
    n, _, h, w = x.shape
    lam = np.random.random()  # Beta(1, 1)
    bh, bw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = np.random.randint(h), np.random.randint(w)
    y0, y1, x0, x1 = max(cy - bh // 2, 0), min(cy + bh // 2, h), max(cx - bw // 2, 0), min(cx + bw // 2, w)
    perm = torch.randperm(n, device=x.device)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, kept * target + (1 - kept) * target[perm]
