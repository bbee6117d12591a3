"""The airbench network and its optimizers (our own code, after Keller Jordan's cifar10-airbench,
airbench94_muon): the fast CNN of cifar10, and of cifar100's CPU profile.

Network: a frozen 2x2 conv initialised to whiten image patches (its bias trains for the first
epochs), then three groups [conv-pool-BN-GELU-conv-BN-GELU], a global max-pool and a linear head
(a 32x32 image leaves a 3x3 map, airbench's MaxPool2d(3); the global pool also takes smaller
images, for cifar100's progressive resizing).
Optimizers: Muon for the 3x3 conv filters; Nesterov SGD (or another by name) with their own
learning rates for the BatchNorm biases, the whitening bias and the head; the loss is summed over
the batch, which the learning rates assume; every rate decays linearly to 0.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import augment, common as vision
from .muon import Muon
from ...toolkit import schedules
from ...toolkit.train import make_loss, make_optimizer


class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1 (only the bias learns); `momentum` in the usual sense: how much of the old
    running statistics is kept per step (torch counts the other way)."""

    def __init__(self, channels: int, momentum: float = 0.6):
        super().__init__(channels, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 'same' conv without bias; the first in_channels filters start as the identity (dirac)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, padding="same", bias=False)
        nn.init.dirac_(self.weight.data[:c_in])


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__(Conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out, bn_momentum), nn.GELU(),
                         Conv(c_out, c_out), BatchNorm(c_out, bn_momentum), nn.GELU())


class Net(nn.Module):
    def __init__(self, widths=(64, 256, 256), bn_momentum: float = 0.6, classes: int = 10):
        super().__init__()
        self.norm = vision.Normalize(3)
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)  # 2x2 patches: 12 whitening filters and their negatives
        self.whiten.weight.requires_grad = False
        self.layers = nn.Sequential(nn.GELU(), ConvGroup(24, widths[0], bn_momentum),
                                    ConvGroup(widths[0], widths[1], bn_momentum),
                                    ConvGroup(widths[1], widths[2], bn_momentum), nn.AdaptiveMaxPool2d(1))
        self.head = nn.Linear(widths[2], classes, bias=False)
        with torch.no_grad():
            self.head.weight /= self.head.weight.std()

    @torch.no_grad()
    def init_whiten(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Filters = eigenvectors of the covariance of all 2x2 patches of the (normalised) images x,
        scaled by 1/sqrt(eigenvalue): the first layer's outputs start decorrelated with unit variance."""
        c, (h, w) = x.shape[1], self.whiten.weight.shape[2:]
        patches = x.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w).float()
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = eigvec.T.reshape(-1, c, h, w) / torch.sqrt(eigval.view(-1, 1, 1, 1) + eps)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.whiten(self.norm(x))).flatten(1)
        return self.head(x) / x.shape[1]


def compile(model: Net, cfg, n_train: int, max_steps: int | None = None):
    """(loss, [sgd, muon], [their schedules]) for loop.fit: cfg's loss by name, summed over the batch
    (the learning rates assume it), with cfg.label_smoothing; the optimizers from cfg's optimizer,
    lr, head_lr, muon_lr, momentum, weight_decay (decoupled, per image of the batch), batch_size,
    epochs and whiten_bias_epochs (after which the whitening bias stops learning)."""
    loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing, reduction="sum")
    filters = [p for p in model.layers.parameters() if p.ndim == 4]
    norm_biases = [m.bias for m in model.modules() if isinstance(m, BatchNorm)]
    wd = cfg.weight_decay * cfg.batch_size  # decoupled decay per step; torch's SGD multiplies it by lr
    groups = [dict(params=[model.whiten.bias], lr=cfg.lr, weight_decay=wd / cfg.lr),
              dict(params=norm_biases, lr=cfg.lr, weight_decay=wd / cfg.lr),
              dict(params=[model.head.weight], lr=cfg.head_lr, weight_decay=wd / cfg.head_lr)]
    sgd = make_optimizer(cfg.optimizer, groups, cfg.lr, momentum=cfg.momentum, nesterov=True)
    muon = Muon(filters, lr=cfg.muon_lr, momentum=0.6, nesterov=True)
    steps = schedules.steps(n_train, cfg.batch_size, cfg.epochs, max_steps=max_steps)
    whiten_steps = schedules.steps(n_train, cfg.batch_size, cfg.whiten_bias_epochs)
    decay = schedules.linear_decay(steps)  # SGD groups: whitening bias (decays over its own steps), BN biases, head
    return loss_fn, [sgd, muon], [schedules.lambda_lr(sgd, [schedules.linear_decay(whiten_steps), decay, decay]),
                                  schedules.lambda_lr(muon, decay)]


def alternating_flip(n: int, translate: int, device):
    """augment(xb, yb, idx, epoch) for loop.fit: each image has a fixed random mirror bit; odd
    epochs use it, even epochs its opposite, so every image is seen both ways in every pair of
    epochs; then a random shift of up to `translate` pixels (reflect padding)."""
    mirror = torch.rand(n, device=device) < 0.5

    def augment_batch(xb, yb, idx, epoch):
        xb = augment.flip(xb, mirror[idx] if epoch % 2 else ~mirror[idx])
        return augment.translate(xb, translate, mode="reflect"), yb
    return augment_batch
