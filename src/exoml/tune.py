"""`exoml tune TASK`: hyper-parameter search with Optuna, always scored on the validation split.

Each trial is an ordinary run of the task (its own run folder under the study folder) with
settings drawn by the TPE sampler; the task's history rows (one per epoch) are reported to
Optuna, so the median pruner can stop hopeless trials early. The objective is the validation
metric the task declares (`Task.tuning`: a history column such as `val_accuracy` and its
direction) in the last epoch: the test split plays no part in any choice. A task that declares
no tuning metric cannot be tuned, and tune says so before the first trial. The search space is
`--space FILE`, else the task's declared space, else one derived from its settings. The study lives in SQLite under the study folder by default, so an interrupted study
resumes where it stopped; any SQLAlchemy URL (e.g. PostgreSQL) lets several processes or
machines share one study.

    runs/<task>/tune-<study>/study.db           the Optuna storage (default)
    runs/<task>/tune-<study>/trials/...         one run folder per trial
    runs/<task>/tune-<study>/best_config.json   feed it to `exoml run TASK --config best_config.json`
    runs/<task>/tune-<study>/report.md + PNGs   optimisation history, importances, parallel coordinates
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import time
from pathlib import Path

from .errors import ExomlError
from .toolkit.report import img, md_table
from .toolkit.runs import atomic_write_text, write_json

def default_space(cfg) -> dict:
    """A sensible search space from the task's own settings (for a task that declares none)."""
    space = {}
    for f in dataclasses.fields(cfg):
        v, name = getattr(cfg, f.name), f.name
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            continue
        if name in ("lr", "learning_rate") and v > 0:
            space[name] = {"type": "float", "low": v / 10, "high": v * 10, "log": True}
        elif name == "weight_decay":
            space[name] = {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}
        elif "dropout" in name:
            space[name] = {"type": "float", "low": 0.0, "high": 0.5}
        elif name == "optimizer":
            space[name] = {"type": "categorical", "choices": ["adam", "adamw", "sgd", "rmsprop"]}
        elif name == "batch_size" and isinstance(v, int):
            space[name] = {"type": "categorical", "choices": sorted({max(8, v // 2), v, v * 2})}
        elif isinstance(v, int) and v >= 4 and any(k in name for k in ("width", "hidden", "channels", "units", "embed")):
            space[name] = {"type": "categorical", "choices": sorted({v // 2, v, v * 2})}
        elif isinstance(v, int) and any(k in name for k in ("depth", "layers")) and v >= 1:
            space[name] = {"type": "int", "low": max(1, v - 1), "high": v + 1}
    return space


def load_space(path: str) -> dict:
    """A search space file (JSON or YAML): setting -> {type: float|int|categorical, low, high | choices}
    (tune checks every entry with check_entry before the first trial)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ExomlError(f"cannot read search space {path}: {e.strerror or e}") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml
            space = yaml.safe_load(text)
        else:
            space = json.loads(text)
    except Exception as e:  # yaml and json raise different types; both mean the same to the user
        raise ExomlError(f"cannot read search space {path}: {e}") from None
    if not isinstance(space, dict) or not space:
        raise ExomlError(f"search space {path} must be a non-empty mapping of setting -> distribution")
    return space


def check_entry(name: str, spec) -> None:
    """One search-space entry, or a one-line error saying what is wrong with it."""
    where = f"search space entry {name!r}"
    if not isinstance(spec, dict):
        raise ExomlError(f"{where} must be a mapping like {{\"type\": \"float\", \"low\": 1e-4, \"high\": 1e-2}}")
    kind = spec.get("type")
    if kind in ("float", "int"):
        missing = [k for k in ("low", "high") if k not in spec]
        if missing:
            raise ExomlError(f"{where}: {kind} needs {' and '.join(missing)}")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ExomlError(f"{where}: low and high must be numbers")
        if low > high:
            raise ExomlError(f"{where}: low {low} is above high {high}")
        if spec.get("log") and low <= 0:
            raise ExomlError(f"{where}: a log scale needs low > 0")
    elif kind == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            raise ExomlError(f"{where}: categorical needs a non-empty list of choices")
    else:
        raise ExomlError(f"{where}: type must be float, int or categorical")


def suggest(trial, space: dict) -> dict:
    params = {}
    for name, spec in space.items():
        kind = spec.get("type")
        if kind == "float":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1))
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, spec["choices"])
        else:
            raise ExomlError(f"search space entry {name!r}: type must be float, int or categorical")
    return params


def _objective_of(row: dict, wanted: str) -> float | None:
    """The objective's value in one history row; None in a row without it (e.g. another protocol's)."""
    value = row.get(wanted)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _storage(url: str, heartbeat: int = 30):
    """RDB storage with heartbeats: every `heartbeat` seconds a running trial says it is alive; one
    silent for three heartbeats (its process killed, its machine lost) is marked failed and retried
    once, so the study neither loses it nor counts it twice."""
    import inspect
    import warnings
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are flagged experimental
        # optuna 5's names; older releases call them RetryFailedTrialCallback and failed_trial_callback
        retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
            optuna.storages.RetryFailedTrialCallback
        retry = retry_cls(max_retry=1)
        callback_arg = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in
                        inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback")
        # SQLite: wait for a lock instead of failing at once when another worker writes.
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        import sqlalchemy.exc
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                  grace_period=3 * heartbeat, **{callback_arg: retry})
            except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ImportError, ValueError) as e:
                # a malformed URL, an unknown database kind, its driver not installed: retrying cannot help
                raise ExomlError(f"cannot use --storage {url}: {str(e).splitlines()[0]}") from None
            except Exception as e:  # two workers creating the schema at the same moment: one loses, retries
                if attempt == 4:
                    if isinstance(e, sqlalchemy.exc.SQLAlchemyError):  # unreachable server, refused login, ...
                        raise ExomlError(f"cannot use --storage {url}: {str(e).splitlines()[0][:200]}") from None
                    raise
                time.sleep(0.5 + random.random())


def tune(task: str, argv: list[str], trials: int, timeout: float | None = None, storage: str | None = None,
         heartbeat: int = 30,
         study_name: str | None = None, space_file: str | None = None, metric: str | None = None) -> Path:
    import optuna
    from .runner import execute, task_config
    from .toolkit.config import validate
    spec, plain = task_config(task, argv, prog="exoml tune")
    # e.g. cifar10 trains on all 50,000 images by default: its trials hold out a validation split,
    # unless a profile, a config file or a flag sets it; best_config.json keeps the plain settings
    _, base = task_config(task, argv, prog="exoml tune", defaults=spec.tuning.trial_settings if spec.tuning else None)
    held = {k: getattr(base, k) for f in dataclasses.fields(base) if getattr(base, k := f.name) != getattr(plain, k)}
    if getattr(base, "ensemble", 1) != 1:  # its history's last rows are one network's, not the ensemble's
        raise ExomlError("exoml tune trains one network per trial: tune without --ensemble, then train the "
                         "ensemble with the chosen settings")
    if spec.tuning is None and metric is None:
        raise ExomlError(f"task {task} cannot be tuned: it declares no validation metric to optimise"
                         + (f" ({spec.tune_note})" if spec.tune_note else ""))
    if metric is not None:  # --metric: a history column; losses and errors are minimised
        direction = "minimize" if any(k in metric for k in ("loss", "mse", "mae", "rmse", "error", "fid")) else "maximize"
    else:
        metric, direction = spec.tuning.metric, spec.tuning.direction
    sign = 1.0 if direction == "maximize" else -1.0
    study_name = study_name or "default"
    folder = Path(base.out) / task / f"tune-{study_name}"
    folder.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    declared = spec.tuning.space if spec.tuning is not None else None
    space = load_space(space_file) if space_file else dict(declared or {}) or default_space(base)
    for name, entry in space.items():  # once, before the first trial, whatever the space's source
        check_entry(name, entry)
    unknown = set(space) - {f.name for f in dataclasses.fields(base)}
    if unknown:
        raise ExomlError(f"search space names unknown settings of {task}: {', '.join(sorted(unknown))}")
    print(f"[tune {task}] objective: {metric} ({direction}, last epoch, validation split); "
          f"space: {', '.join(space) or 'empty'}"
          + "".join(f"; every trial: --{k.replace('_', '-')} {v}" for k, v in held.items()), flush=True)

    # The study always maximises a score: the metric itself, or minus it for losses and errors.
    study = optuna.create_study(
        study_name=study_name, load_if_exists=True, direction="maximize",
        storage=_storage(storage, heartbeat),
        sampler=optuna.samplers.TPESampler(seed=base.seed), pruner=optuna.pruners.MedianPruner(n_warmup_steps=1))

    def objective(trial):
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it (shared studies)
        params = suggest(trial, space)
        cfg = dataclasses.replace(base, **params, seed=base.seed + trial.number)
        validate(cfg)
        state = {}

        def on_epoch(row):
            value = _objective_of(row, metric)
            if value is None:
                return
            state["value"] = value
            step = state["step"] = state.get("step", 0) + 1  # the n-th row carrying the objective
            trial.report(sign * value, step=step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {row.get('epoch')}")

        path, _ = execute(spec, cfg, out=folder / "trials", on_epoch=on_epoch)
        if "value" not in state:
            raise ExomlError(f"task {task} logged no {metric} in its history: nothing to tune on")
        trial.set_user_attr("run", str(path))
        trial.set_user_attr("metric", metric)
        trial.set_user_attr("metric_value", state["value"])
        return sign * state["value"]

    done = lambda: sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                       for t in study.trials)
    remaining = max(0, trials - done())
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(ExomlError,),
                       callbacks=[optuna.study.MaxTrialsCallback(trials, states=(
                           optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))])
    write_study_report(study, folder, task, plain, held)
    return folder


def write_study_report(study, folder: Path, task: str, base, held: dict | None = None) -> None:
    """best_config.json (`base` with the best trial's values), the trials' table and plots, report.md;
    `held`: settings every trial had that a plain run does not (e.g. a validation split)."""
    import optuna
    import matplotlib.pyplot as plt
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ExomlError("no trial completed: nothing to report")
    best = study.best_trial
    best_cfg = {**dataclasses.asdict(base), **best.params}
    best_cfg.pop("out", None)
    write_json(folder / "best_config.json", best_cfg)
    rows = [{"trial": t.number, "state": t.state.name, t.user_attrs.get("metric", "value"): t.user_attrs.get("metric_value"),
             **t.params} for t in study.trials]
    figures = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's matplotlib plots are flagged experimental
        vis = optuna.visualization.matplotlib
        plots = [("optimization_history.png", vis.plot_optimization_history), ("parallel_coordinate.png",
                 vis.plot_parallel_coordinate), ("slice.png", vis.plot_slice)]
        if len(complete) >= 2 and best.params:
            plots.append(("param_importances.png", vis.plot_param_importances))
        for name, fn in plots:
            try:
                ax = fn(study)
                fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                fig.savefig(folder / name, dpi=100, bbox_inches="tight")
                plt.close(fig)
                figures.append(name)
            except (ValueError, RuntimeError, ImportError):
                continue  # e.g. importances need at least two distinct parameter values
    metric = best.user_attrs.get("metric", "validation metric")
    text = "\n".join([
        f"# Tuning {task}: study {study.study_name}", "",
        f"{len(study.trials)} trials ({len(complete)} complete), objective: {metric} of the last epoch, "
        "measured on the validation split carved from train (losses are minimised, the rest maximised).", "",
        f"Best trial {best.number}: {metric} = {best.user_attrs.get('metric_value'):.4g}. "
        "Retrain it and evaluate once on the test split:",
        "", f"    exoml run {task} --config {folder / 'best_config.json'}", "",
        *([f"Every trial also took {', '.join(f'`{k}` = {v}' for k, v in held.items())}, which a plain run of "
           f"{task} does not take; best_config.json has the plain run's values.", ""]
          if held else []),
        "## Trials", "", md_table(rows), "", *[img(f) + "\n" for f in figures]])
    atomic_write_text(folder / "report.md", text)
    print(f"[tune {task}] best {metric} = {best.user_attrs.get('metric_value'):.4g} (trial {best.number}); "
          f"best config: {folder / 'best_config.json'}")
