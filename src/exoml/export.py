"""`exoml export TASK [--run RUN] --format onnx`: a trained run's torch model as one ONNX file,
checked against PyTorch before it is kept.

    RUN/export/model.onnx          the network (float32; dynamic batch, and sequence length for imdb),
                                   metadata_props naming the task, classes, preprocessing and the run
    RUN/export/<sidecar>.json      what does not fit the metadata (the imdb vocabulary)
    RUN/export/verification.json   ONNX Runtime against PyTorch on the run's evaluation inputs

The task says what to export through its `export` hook (exoml.tasks.contract.Export); everything
ONNX lives here. The check: on every evaluation item (e.g. the official test split) ONNX Runtime and
PyTorch must give the same prediction for at least AGREEMENT of the items, and every output must be
within ATOL + RTOL * |PyTorch's value|. A failed check keeps no model.onnx or verification.json
(its numbers go to verification.failed.json) and exits 1.
"""
from __future__ import annotations

import io
import json
import time
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from .errors import ExomlError

FORMATS = ("onnx",)
OPSET = 17               # ONNX opset: LSTM, GatherElements, OneHot; served by every current ONNX Runtime
AGREEMENT = 0.999        # share of items whose prediction must match PyTorch's
ATOL, RTOL = 1e-4, 1e-3  # float32 on both sides; different kernels differ in rounding only (~1e-6)
INSTALL = 'exporting needs onnx and onnxruntime: pip install "exoml[export]"'


class VerificationFailed(ExomlError):
    """ONNX Runtime does not reproduce PyTorch on the run's evaluation inputs (exit 1)."""


def _libraries():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ExomlError(INSTALL) from None
    return onnx, onnxruntime


def export(task_name: str, run: Path | None = None, out: str | Path = "runs",
           fmt: str = "onnx") -> tuple[dict, Path]:
    """Export a run of `task_name` (the given folder, else the latest complete run under `out`),
    verify it and write RUN/export/. Returns (the verification record, RUN/export)."""
    from . import tasks
    from .toolkit.weights import open_run
    if fmt not in FORMATS:
        raise ExomlError(f"--format {fmt}: unknown export format (choose from: {', '.join(FORMATS)})")
    task = tasks.get(task_name)
    if task.export is None:
        able = ", ".join(t.name for t in tasks.all_tasks() if t.export is not None)
        raise ExomlError(f"task {task_name!r} has no torch model to export (tasks that have one: {able})")
    onnx, ort = _libraries()
    run_dir, info = open_run(task.name, run, out)
    if not (run_dir / "model.safetensors").is_file():
        raise ExomlError(f"{run_dir} has no model.safetensors: nothing to export")
    spec = task.export(run_dir, info)
    print(f"[{task.name}] exporting {run_dir}; verifying on {spec.evaluated}", flush=True)
    model_bytes = _to_onnx(spec, onnx, _metadata(task, run_dir, info, spec))
    try:
        record = verify(spec, model_bytes, ort)
    except VerificationFailed:
        _discard(run_dir / "export", spec)
        raise
    record.update(task=task.name, run=run_dir.name, format="onnx", opset=OPSET,
                  exported=datetime.now().isoformat(timespec="seconds"))
    _write(run_dir / "export", spec, model_bytes, record)
    return record, run_dir / "export"


def _metadata(task, run_dir: Path, info: dict, spec) -> dict[str, str]:
    """metadata_props: the run (folder, git sha, headline metric), then what the task adds."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        metrics = {}
    headline = metrics.get(task.headline.key)
    meta = {"task": task.name, "exercise": task.exercise, "model": task.model,
            "run": run_dir.name, "run_started": info.get("started", ""),
            "git_sha": (info.get("environment") or {}).get("git_sha") or "unknown",
            "headline_metric": task.headline.key, "headline_label": task.headline.label,
            "headline_value": "" if headline is None else repr(headline),
            "inputs": ", ".join(spec.input_names), "outputs": ", ".join(spec.output_names),
            "precision": "float32 (a model trained under bf16 autocast keeps float32 weights: exported in float32)"}
    for k, v in spec.metadata.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return meta


def _to_onnx(spec, onnx, metadata: dict[str, str]) -> bytes:
    """The module traced into ONNX (TorchScript exporter), metadata added, checked by onnx.checker."""
    import torch
    buf = io.BytesIO()
    with warnings.catch_warnings(), _one_line("the ONNX exporter"):
        # The TorchScript exporter announces its successor (torch.export-based, which needs onnxscript
        # and is 10-20x slower on these RNNs); the tracer's notes are about Python values (sizes of
        # fixed axes) that it keeps as constants. verify() runs the file on the evaluation batches,
        # whose sizes (and imdb's lengths) differ from the traced example's.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(spec.module, tuple(spec.inputs), buf, dynamo=False, opset_version=OPSET,
                              input_names=list(spec.input_names), output_names=list(spec.output_names),
                              dynamic_axes={k: dict(v) for k, v in spec.dynamic_axes.items()})
    with _one_line("onnx", onnx.checker.ValidationError):
        model = onnx.load_from_string(buf.getvalue())
        for k, v in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
        model.producer_name = "exoml"
        onnx.checker.check_model(model)
    return model.SerializeToString()


@contextmanager
def _one_line(who: str, *more: type):
    """A model the exporter or the checker cannot handle is a one-line error naming the step, not a
    traceback (the message is the library's own, cut to its first line)."""
    try:
        yield
    except (RuntimeError, ValueError, TypeError, NotImplementedError, *more) as e:
        raise ExomlError(f"{who} failed on this model: {_first_line(e)}") from None


def verify(spec, model_bytes: bytes, ort) -> dict:
    """Run PyTorch and ONNX Runtime on every evaluation batch; compare predictions and outputs."""
    import torch
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
    try:
        runtime = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's errors derive from Exception only
        raise VerificationFailed(f"ONNX Runtime cannot load the exported model: {_first_line(e)}") from None
    n = same = within = 0
    max_abs, worst_excess = 0.0, 0.0
    batch_sizes: set[int] = set()
    t0 = time.time()
    for batch in spec.evaluation():
        batch = tuple(np.asarray(a) for a in batch)
        with torch.no_grad():
            ref = spec.module(*(torch.from_numpy(a) for a in batch))
        ref = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else (ref,))]
        try:
            got = runtime.run(list(spec.output_names), dict(zip(spec.input_names, batch)))
        except Exception as e:  # e.g. a shape the trace fixed that this batch does not have
            raise VerificationFailed(f"ONNX Runtime cannot run the exported model on a batch of "
                                     f"{spec.evaluated}: {_first_line(e)}; nothing exported") from None
        m = len(batch[0])
        batch_sizes.add(m)
        ok = np.ones(m, dtype=bool)
        for r, g in zip(ref, got):
            if r.shape != g.shape:
                raise VerificationFailed(f"ONNX Runtime returned shape {g.shape}, PyTorch {r.shape}")
            diff = np.abs(g.astype(np.float64) - r)
            max_abs = max(max_abs, float(diff.max(initial=0.0)))
            excess = diff - (ATOL + RTOL * np.abs(r))
            worst_excess = max(worst_excess, float(excess.max(initial=0.0)))
            ok &= (excess <= 0).reshape(m, -1).all(1)
        within += int(ok.sum())
        if spec.decide is not None:
            same += int((np.asarray(spec.decide(ref[0])) == np.asarray(spec.decide(got[0]))).sum())
        else:
            same += int(ok.sum())
        n += m
    if n == 0:
        raise ExomlError(f"no evaluation inputs to verify the export on ({spec.evaluated})")
    agreement, share_within = same / n, within / n
    return {"passed": bool(agreement >= AGREEMENT and share_within == 1.0),
            "items": n, "evaluated_on": spec.evaluated,
            "agreement": agreement, "agreement_required": AGREEMENT,
            "compared": "the prediction of each item" if spec.decide is not None
                        else "every output of each item, within the tolerance",
            "within_tolerance": share_within, "max_abs_diff": max_abs,
            "tolerance": {"abs": ATOL, "rel": RTOL, "rule": "|onnx - torch| <= abs + rel * |torch|, every output"},
            "batch_sizes": sorted(batch_sizes), "seconds": round(time.time() - t0, 2),
            "onnxruntime": ort.__version__, "onnx": _libraries()[0].__version__, "torch": torch.__version__}


def _write(folder: Path, spec, model_bytes: bytes, record: dict) -> None:
    """A passing export: sidecars, model.onnx, then verification.json (the mark of a good export).
    A failing one: verification.failed.json only, and no earlier model.onnx stays beside it."""
    from .toolkit.runs import atomic_write_bytes, write_json
    if not record["passed"]:
        _discard(folder, spec)
        write_json(folder / "verification.failed.json", record)
        raise VerificationFailed(
            f"the ONNX model does not reproduce PyTorch on {record['items']} items: agreement "
            f"{record['agreement']:.4%} (needs {AGREEMENT:.1%}), {record['within_tolerance']:.4%} within "
            f"abs {ATOL:g} + rel {RTOL:g}, max |diff| {record['max_abs_diff']:.3g}; nothing exported "
            f"(details: {folder / 'verification.failed.json'})")
    (folder / "verification.failed.json").unlink(missing_ok=True)
    (folder / "verification.json").unlink(missing_ok=True)  # until the new model is in place
    for name, obj in spec.sidecars.items():
        write_json(folder / name, obj)
    atomic_write_bytes(folder / "model.onnx", model_bytes)
    write_json(folder / "verification.json", {**record, "files": ["model.onnx", *spec.sidecars]})


def _discard(folder: Path, spec) -> None:
    """Remove an earlier export of this run: it would look good next to a failed check."""
    for name in ("verification.json", "model.onnx", *spec.sidecars):
        (folder / name).unlink(missing_ok=True)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def summary(record: dict, folder: Path) -> str:
    size = (folder / "model.onnx").stat().st_size
    return (f"exported {folder / 'model.onnx'} ({size / 1e6:.2f} MB, onnx opset {OPSET})\n"
            f"verified with onnxruntime {record['onnxruntime']} on {record['evaluated_on']}: agreement with "
            f"PyTorch {record['agreement']:.2%}, max |diff| {record['max_abs_diff']:.2g} "
            f"(tolerance abs {ATOL:g} + rel {RTOL:g})\nverification: {folder / 'verification.json'}")
