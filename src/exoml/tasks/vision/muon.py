"""Muon: momentum, then an orthogonalised update, for conv filters (Jordan et al. 2024); the
optimizer of the CIFAR-10 airbench recipe."""
from __future__ import annotations

import torch


def _orthogonalize(g: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """Approximate U V^T of g = U S V^T by a quintic Newton-Schulz iteration (coefficients from the
    Muon write-up: they push small singular values up fast; the result has singular values ~0.5-1.5)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16()
    x = x / (x.norm() + 1e-7)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum, then an orthogonalised update, for conv filters (Jordan et al. 2024, "Muon").
    Each filter bank is kept at a fixed norm (sqrt of its output channels), so `lr` is a step
    relative to the weight's size and the loss scale does not matter."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.6, nesterov: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p.grad))
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                p.add_(_orthogonalize(g.reshape(len(g), -1)).view_as(p), alpha=-group["lr"])
