"""`exoml export kddcup`: protocol B's autoencoder with its anomaly score as an output, verified on the
`corrected` records the run scored (its verdicts: score above the run's threshold)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ...errors import ExomlError
from ..contract import Export
from . import common as tabular
from .common import HEAVY, ONE_HOT, encode, features
from .kddcup_detectors import AutoEncoder


class Scored(nn.Module):
    """The autoencoder returning (score, reconstruction): the score is the mean squared
    reconstruction error per row (kddcup_detectors.ae_score)."""

    def __init__(self, ae: nn.Module):
        super().__init__()
        self.ae = ae

    def forward(self, x):
        rec = self.ae(x)
        return ((rec - x) ** 2).mean(1), rec


def export_run(task: str, run_dir: Path, info: dict, batch_size: int = 8192) -> Export:
    from ... import data
    from ...toolkit.weights import load_state
    from .kddcup import subsets
    c = info["config"]
    if "B" not in c.get("protocols", ["B"]):
        raise ExomlError(f"{run_dir} ran protocol A only: the exported detector is protocol B's (trained on normal "
                         "traffic); train one with `exoml run kddcup --protocols B`")
    m = tabular.load_model(run_dir, "model.json", task)
    ae = AutoEncoder(m["input_dim"], m["hidden"])
    load_state(ae, run_dir / "model.safetensors", task)
    model = Scored(ae.float()).eval()
    ds = data.load(task)
    _, te = subsets(ds.train, ds.test, c.get("train_subset", 0), c.get("test_subset", 0),
                    np.random.default_rng(c["seed"]))
    prep = m["prep"]
    x_test = features(prep, *encode(te, prep["numeric"]))
    threshold = float(m["threshold"])
    try:
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as p:
            scored = len(p["b_autoencoder"])
    except (OSError, ValueError, KeyError):
        scored = None
    if scored is not None and scored != len(x_test):
        raise ExomlError(f"the imported kddcup data is not the one {run_dir} was scored on ({len(x_test):,} test "
                         f"records now, {scored:,} then): import that data again to export this run")

    def batches():
        for i in range(0, len(x_test), batch_size):
            yield (x_test[i:i + batch_size],)

    preprocessing = {
        "input": f"float32 (N, {m['input_dim']}): the record's numeric columns scaled, then one one-hot block per "
                 f"symbolic column ({', '.join(ONE_HOT)}), in the order of the categories below (a value not "
                 "seen in training: all zeros)",
        "record_fields": m["features"], "numeric": prep["numeric"],
        "log1p": [col for col in HEAVY if col in prep["numeric"]],
        "scaling": f"{prep['scaler']}: (value - centre) / scale, after log1p of the log1p columns",
        "centre": list(map(float, prep["centre"])), "scale": list(map(float, prep["scale"])),
        "categories": prep["categories"],
        "output": f"score (N,): mean squared reconstruction error; score > threshold ({threshold!r}) flags an "
                  "anomaly (an attack); reconstruction (N, D)"}
    try:  # the run's headline (protocol A) may be absent: name protocol B's own numbers too
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    measured = {k: metrics[k] for k in ("B_autoencoder_precision", "B_autoencoder_recall", "B_autoencoder_f1",
                                        "B_autoencoder_roc_auc", "B_autoencoder_false_alarm_rate") if k in metrics}
    n = len(x_test)
    where = "the official test file `corrected`" if n == len(ds.test) else "the run's random subset of `corrected`"
    return Export(
        module=model, inputs=(torch.zeros(2, m["input_dim"]),), input_names=("features",),
        output_names=("score", "reconstruction"),
        dynamic_axes={"features": {0: "batch"}, "score": {0: "batch"}, "reconstruction": {0: "batch"}},
        metadata={"classes": ["normal", "anomaly"], "threshold": threshold, "fpr_target": m.get("fpr_target"),
                  "preprocessing": preprocessing, "protocol_b_test_metrics": measured},
        evaluation=batches, evaluated=f"{where} ({n:,} records)", decide=lambda score: score > threshold)
