"""The GAN task's judge: the project's own MNIST CNN that measures generated digits (FID on its
penultimate features, its confidence, its class shares). Either a complete `mnist` run (a fixed
judge, so runs compare), or the mnist task's network trained here on the training split with
plain cross-entropy, saved beside the GAN as judge.safetensors."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ...toolkit import loop, schedules, train, weights
from ...errors import ExomlError
from ...toolkit.runs import Run


def get_judge(cfg, mnist, run: Run, device) -> tuple[nn.Module, str]:
    """The MNIST CNN that measures the digits: a complete single-network `mnist` run whose test
    accuracy is at least cfg.judge_min_accuracy, else one trained here."""
    from ..vision import mnist as judge_task
    if cfg.judge != "train":
        try:
            path, accuracy = judge_run(cfg)
        except ExomlError as e:
            if cfg.judge != "auto":
                raise
            if "below the judge" in str(e) or "ensemble" in str(e):
                print(f"[gan] {e}; training a judge here instead", flush=True)
        else:
            return judge_task.load_classifier(path, device=device), f"mnist run {path} ({accuracy:.2%} test accuracy)"
    return train_judge(cfg, mnist, judge_task, run, device), "trained here on the training split (judge.safetensors)"


def judge_run(cfg) -> tuple[Path, float]:
    """(folder, test accuracy) of the mnist run --judge names (or the latest, for auto); an
    ExomlError when there is none, it is an ensemble, or it is weaker than cfg.judge_min_accuracy."""
    path, info = weights.open_run("mnist", None if cfg.judge == "auto" else Path(cfg.judge), cfg.out)
    networks = (info.get("config") or {}).get("ensemble", 1)
    if networks != 1:
        raise ExomlError(f"the mnist run {path} is an ensemble of {networks} networks: the judge is one network "
                         f"(FID compares its features), so name a single-network run with --judge")
    accuracy = judge_accuracy(path)
    if accuracy < cfg.judge_min_accuracy:
        raise ExomlError(f"the mnist run {path} reached {accuracy:.1%} test accuracy, below the judge's "
                         f"{cfg.judge_min_accuracy:.0%} (--judge-min-accuracy): its verdicts would mean nothing")
    return path, accuracy


def judge_accuracy(path: Path) -> float:
    """The test accuracy an mnist run recorded (its metrics.json)."""
    import json
    try:
        accuracy = json.loads((Path(path) / "metrics.json").read_text())["accuracy"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ExomlError(f"{path} records no test accuracy (metrics.json): it cannot serve as the judge") from None
    return float(accuracy)


def train_judge(cfg, mnist, judge_task, run: Run, device) -> nn.Module:
    """The mnist task's network (profile cfg.judge_profile) and optimizer, trained briefly on the training
    split with plain cross-entropy: no label smoothing, so its confidence means what it says."""
    from ..vision import common as vision
    jcfg = judge_task.TASK.settings(cfg.judge_profile)
    n = min(cfg.judge_n_train or len(mnist.y_train), len(mnist.y_train))
    x, y = vision.nchw(mnist.x_train[:n]).to(device), torch.from_numpy(mnist.y_train[:n]).to(device)
    model = judge_task.build_model(jcfg)
    model.norm.set_stats(*vision.channel_stats(x))  # input statistics of the training split
    model = model.to(device, memory_format=vision.memory_format(device))
    opt = train.make_optimizer(jcfg.optimizer, model.parameters(), jcfg.lr, jcfg.weight_decay)
    max_steps = 1 if cfg.dry_run else None
    steps = schedules.steps(n, jcfg.batch_size, cfg.judge_epochs, max_steps=max_steps)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, jcfg.warmup, start=0.1))
    loop.fit(model, x, y, train.make_loss("cross_entropy"), [opt], [sched], epochs=cfg.judge_epochs,
             batch_size=jcfg.batch_size, transform=vision.to_float, precision=cfg.precision, max_steps=max_steps,
             desc="judge")
    run.save_weights(train.state_dict_for_save(model), "judge.safetensors",
                     meta={"task": "mnist", "role": "gan judge", "profile": cfg.judge_profile})
    return model.eval()


def recorded_judge(run_dir: Path, info: dict, metrics: dict, device="cpu") -> tuple[nn.Module | None, str]:
    """The judge a finished gan run was measured with (its judge.safetensors, or the mnist run its
    metrics name), in eval mode; (None, why) when it is gone."""
    import re
    from ..vision import mnist as judge_task
    source = str(metrics.get("judge", ""))
    own = Path(run_dir) / "judge.safetensors"
    if own.is_file():
        model = judge_task.build_model(judge_task.TASK.settings(info["config"].get("judge_profile", "full")))
        weights.load_state(model, own, "mnist")
        return model.to(device).eval(), source
    found = re.match(r"mnist run (.+?) \(", source)
    if not found:
        return None, "the run records no judge"
    given = Path(found.group(1))
    # the path as recorded (absolute, or relative to where the run was started), else the run of that
    # name beside this one (a runs folder that moved)
    for path in (given, Path(run_dir).parent.parent / "mnist" / given.name):
        try:
            return judge_task.load_classifier(path, device=device), source
        except ExomlError:
            continue
    return None, f"its judge ({source}) is not there any more"
