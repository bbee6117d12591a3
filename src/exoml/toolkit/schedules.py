"""Learning-rate schedules: the step count of a training run and the per-step lr factors the
recipes use, applied through `torch.optim.lr_scheduler.LambdaLR` (one factor per parameter group
if need be), so a schedule's position is the scheduler's own counter and resumes with it.

    total = steps(len(x_train), batch_size, epochs)              # what loop.fit will run
    sched = lambda_lr(opt, one_cycle(total, warmup=0.15, start=0.1))
    sched = lambda_lr(sgd, [linear_decay(whiten_steps), linear_decay(total), linear_decay(total)])

The factors are small callable objects (not closures), so a scheduler built from them can be
compared, printed and tested; the checkpoint keeps only the scheduler's counters.

torch's OneCycleLR and LinearLR are not used: OneCycleLR starts and ends at fixed fractions of the
peak (div_factor, final_div_factor) instead of the recipes' start and 0, and LinearLR composes its
factor multiplicatively step by step (it drifts from the closed form by float rounding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


def steps(n: int, batch_size: int, epochs: float, drop_last: bool = True, max_steps: int | None = None) -> int:
    """Optimizer steps of `epochs` passes over n rows: batches per epoch (n // batch_size when the
    last partial batch is dropped, else ceil(n / batch_size)) times epochs, rounded to the nearest
    step (epochs may be fractional), at least 1, at most max_steps."""
    bs = min(batch_size, n) if n else batch_size
    per_epoch = n // bs if drop_last else math.ceil(n / bs)
    total = max(1, round(epochs * per_epoch))
    return min(total, max_steps) if max_steps else total


@dataclass(frozen=True)
class OneCycle:
    """Linear warm-up to the peak over the first `warmup` fraction of the steps (floor, at least 1
    step), then a linear fall to 0 at step `total`. The warm-up starts at `start` x peak; `shift` 1
    counts step 0 as the first warm-up step (factor (s + 1) / warm: the peak comes one step earlier
    and the very first step is not taken at `start`)."""
    total: int
    warmup: float = 0.2
    start: float = 0.0
    shift: int = 0

    @property
    def warm(self) -> int:
        return max(1, int(self.total * self.warmup))

    def __call__(self, step: int) -> float:
        warm = self.warm
        if step < warm:
            return self.start + (1 - self.start) * (step + self.shift) / warm
        return max(0.0, (self.total - step) / max(1, self.total - warm))


@dataclass(frozen=True)
class LinearDecay:
    """1 (the peak) until the last `fraction` of `total` steps, then a linear fall to 0 at `total`;
    fraction 1 decays from the first step, fraction 0 is constant."""
    total: int
    fraction: float = 1.0

    def __call__(self, step: int) -> float:
        start = self.total * (1 - self.fraction)
        if self.fraction <= 0 or self.total <= 0 or step < start:
            return 1.0
        return max(0.0, 1 - (step - start) / (self.total - start))


@dataclass(frozen=True)
class Constant:
    """The peak all along (a scheduler that does nothing: still a counter in the history and checkpoint)."""

    def __call__(self, step: int) -> float:
        return 1.0


def one_cycle(total: int, warmup: float = 0.2, start: float = 0.0, shift: int = 0) -> OneCycle:
    return OneCycle(total, warmup, start, shift)


def linear_decay(total: int, fraction: float = 1.0) -> LinearDecay:
    return LinearDecay(total, fraction)


def constant() -> Constant:
    return Constant()


def lambda_lr(optimizer: torch.optim.Optimizer,
              factors: Callable[[int], float] | Sequence[Callable[[int], float]]) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR of `factors` (one for all parameter groups, or one per group); call .step() once
    per optimizer step (loop.fit does)."""
    per_group = isinstance(factors, (list, tuple))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, list(factors) if per_group else factors)
