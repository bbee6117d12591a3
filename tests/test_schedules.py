"""The learning-rate schedules: values at known steps, the step count's rounding, and a
scheduler's position surviving a checkpoint."""
from __future__ import annotations

import pytest
import torch

from exoml.toolkit import schedules


def _lrs(factor, n, lr=1.0):
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=lr)
    sched = schedules.lambda_lr(opt, factor)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out + [opt.param_groups[0]["lr"]]


def test_step_count_rounds_to_the_nearest_step():
    assert schedules.steps(1000, 64, 1) == 15                         # last partial batch dropped
    assert schedules.steps(1000, 64, 1, drop_last=False) == 16        # ... or kept
    assert schedules.steps(1000, 100, 2.5) == 25
    assert schedules.steps(1000, 300, 0.5) == 2                       # 1.5 -> 2 (round half to even)
    assert schedules.steps(1000, 300, 0.49) == 1                      # 1.47 -> 1
    assert schedules.steps(10, 100, 0.01) == 1                        # at least one step
    assert schedules.steps(1000, 100, 3, max_steps=7) == 7
    assert schedules.steps(50, 500, 2) == 2                           # batch larger than the data: one per epoch


def test_one_cycle_warms_up_from_start_then_falls_to_zero():
    f = schedules.one_cycle(100, warmup=0.2, start=0.1)
    assert f.warm == 20
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(0.55) and f(20) == 1.0
    assert f(60) == pytest.approx(0.5) and f(100) == 0.0 and f(120) == 0.0
    g = schedules.one_cycle(100, warmup=0.1, shift=1)                 # (s + 1) / warm: the peak at step warm - 1
    assert g(0) == pytest.approx(0.1) and g(9) == 1.0 and g(10) == 1.0
    assert schedules.one_cycle(7, 0.15).warm == 1                     # at least one warm-up step
    lrs = _lrs(schedules.one_cycle(10, 0.2, start=0.1), 10, lr=2.0)
    assert lrs[0] == pytest.approx(0.2) and max(lrs) == 2.0 and lrs[-1] == 0.0


def test_linear_decay_and_constant():
    f = schedules.linear_decay(100)
    assert f(0) == 1.0 and f(25) == pytest.approx(0.75) and f(100) == 0.0 and f(150) == 0.0
    h = schedules.linear_decay(100, 0.5)
    assert h(49) == 1.0 and h(50) == 1.0 and h(75) == pytest.approx(0.5)
    assert all(schedules.linear_decay(100, 0.0)(s) == 1.0 for s in range(101))
    assert all(schedules.constant()(s) == 1.0 for s in range(10))
    assert _lrs([schedules.linear_decay(4)], 4) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_scheduler_position_survives_a_checkpoint(tmp_path):
    from exoml.toolkit import checkpoint

    def make():
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        return model, opt, schedules.lambda_lr(opt, schedules.one_cycle(20, 0.25, start=0.1))
    model, opt, sched = make()
    for _ in range(7):
        opt.step()
        sched.step()
    checkpoint.save(tmp_path / "c.safetensors", model, [opt], [sched], {"step": 7})
    model2, opt2, sched2 = make()
    checkpoint.load(tmp_path / "c.safetensors", model2, [opt2], [sched2])
    assert sched2.last_epoch == 7 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for _ in range(5):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
