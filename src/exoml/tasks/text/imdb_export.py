"""`exoml export imdb`: the run's sentiment RNN over word ids (batch and sequence length dynamic), its
vocabulary as a sidecar file, verified on the test reviews the run scored."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import ExomlError
from ..contract import Export
from . import tokens as text


def export_run(task: str, build_model, dataset: str, run_dir: Path, info: dict, batch_size: int = 256) -> Export:
    import torch
    from ... import data
    from ...toolkit.weights import load_state
    c = info["config"]
    try:
        words = json.loads((run_dir / "vocab.json").read_text())
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as p:
            index = p["index"]
    except (OSError, ValueError, KeyError):
        raise ExomlError(f"{run_dir} has no readable vocab.json and predictions.npz (the test reviews it scored)") \
            from None
    model = build_model(c, c["vocab_size"])
    load_state(model, run_dir / "model.safetensors", task=task)
    model = model.float().eval()
    # Cutting each batch after its longest review (rounded up to LENGTH_STEP) is a Python int taken
    # from the data: a traced graph would keep the example's length. The exported graph reads the
    # whole (padded) width instead; the result is the same (padding never enters a state:
    # SentimentRNN.forward).
    model.trim = False

    ds = data.load(dataset)
    corpus = text.token_cache({"train": ds.train, "test": ds.test}, c["lowercase"], c["punctuation"])
    if len(index) and index.max() >= len(ds.test):
        raise ExomlError(f"the imported imdb data is not the one {run_dir} was scored on (it has {len(ds.test):,} "
                         "test reviews): import that data again to export this run")
    x_test = text.pad(corpus["test_ids"], corpus["test_offsets"], c["max_len"], c["vocab_size"])[index]
    lens = (x_test != text.PAD).sum(1)
    order = np.argsort(lens, kind="stable")

    def batches():  # by length, each cut to its longest review: how a user would batch, and fast
        for i in range(0, len(order), batch_size):
            rows = x_test[order[i:i + batch_size]]
            yield (np.ascontiguousarray(rows[:, :max(1, int(lens[order[i:i + batch_size]].max()))]),)

    preprocessing = {
        "input": "int64 ids (N, T): N reviews, each tokenised as below, right-padded to a common length",
        "vocabulary_file": "vocab.json (word of id i at position i)",
        "vocabulary_words": len(words[:c["vocab_size"]]), "pad_id": text.PAD, "unknown_id": text.UNK,
        "clean": "replace <br /> and any other <...> tag by a space", "lowercase": c["lowercase"],
        "token_pattern": text.token_pattern(c["punctuation"]),
        "tokens": "re.findall(token_pattern, cleaned (and lowercased) text): words, with one inner apostrophe, "
                  f"and the punctuation marks {c['punctuation']!r}",
        "ids": "position in the vocabulary; a word outside it is unknown_id",
        "max_len": c["max_len"], "truncation": "a longer review keeps its last max_len tokens",
        "padding": "right-padded with pad_id to the longest review of the batch"}
    n = len(index)
    where = ("the official test split" if n == len(ds.test)
             else "the run's stratified subset of the official test split")
    return Export(
        module=model, inputs=(torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]]),), input_names=("ids",),
        output_names=("logit",), dynamic_axes={"ids": {0: "batch", 1: "tokens"}, "logit": {0: "batch"}},
        metadata={"classes": list(ds.classes), "preprocessing": preprocessing,
                  "output": f"logit (N,): sigmoid(logit) = p({ds.classes[1]}); above 0.5 -> {ds.classes[1]}"},
        evaluation=batches, evaluated=f"{where} ({n:,} reviews)", decide=lambda logit: logit > 0,
        sidecars={"vocab.json": words[:c["vocab_size"]]})
