"""Finding a trained run and loading its weights safely (safetensors only, checked against the model)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ExomlError
from .runs import is_complete, latest_run


def open_run(task: str, run: Path | None = None, out: str | Path = "runs") -> tuple[Path, dict]:
    """(run folder, its config.json) for `task`: the given folder, else the latest complete run."""
    if run is None:
        run = latest_run(task, out)
        if run is None:
            raise ExomlError(f"no complete run of {task} under {Path(out) / task}: train one with `exoml run {task}`")
    run = Path(run)
    try:
        info = json.loads((run / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ExomlError(f"{run} is not an exoml run folder (no readable config.json)") from None
    if info.get("task") != task:
        raise ExomlError(f"{run} is a run of {info.get('task')!r}, not of {task!r}")
    if not is_complete(run):
        raise ExomlError(f"{run} did not complete (see its status.json); use a complete run")
    return run, info


def load_state(model, path: Path, task: str | None = None) -> dict:
    """Load a safetensors file into `model`, refusing files that are not ours or do not fit.
    Returns the file's metadata (strings)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open
    path = Path(path)
    if not path.is_file():
        raise ExomlError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ExomlError(f"{path.name} is not a valid safetensors weights file ({str(e)[:80]})") from None
    if task is not None and meta.get("task") not in (None, task):
        raise ExomlError(f"{path.name} holds weights of task {meta.get('task')!r}, not {task!r}")
    own = model.state_dict()
    missing, extra = set(own) - set(state), set(state) - set(own)
    bad = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or extra or bad:
        detail = (f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(extra)[:3]}" if extra
                  else f"shape mismatch at {bad[:3]}")
        raise ExomlError(f"{path.name} does not fit this model ({detail}); was it trained with other settings?")
    model.load_state_dict(state)
    return meta
