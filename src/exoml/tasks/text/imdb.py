"""IMDB review sentiment: word embedding + bidirectional recurrent network, trained on IMDB only.

Data: the 25,000 labelled training reviews (2,500 of them held out, stratified, to choose the
epoch) and the official 25,000-review test split, 50/50 positive/negative. Reviews are cleaned
(`<br />` tags, case), tokenised (words, plus `!` and `?`) and mapped to a vocabulary built from
the training split only; the tokenised corpus is cached under <data home>/imdb/tokens/.
Model: embedding -> stacked bidirectional LSTM, GRU or minGRU over the real tokens of each review
(right-padded batches with exact masking: the backward direction reads each review reversed
within its own length, so padding never enters a state) -> max-pool over time (or max and mean)
-> one logit. No pretrained embeddings or language models. Training batches hold reviews of
similar length, cut after the longest (on the CPU rounded up to LENGTH_STEP tokens, so the steps
repeat a few tensor shapes and the run keeps freed memory: Task.steady_shapes): little of a batch
is padding.

Recipes: `full` (a GPU's default) is a 2x256 BiLSTM over 800 tokens; `cpu` (the default without
a GPU) is a 2x128 bidirectional minGRU (mingru.py), whose recurrence is linear in the state and so
runs as a scan in parallel over time: a training step of 64 reviews of 233 tokens took 0.44 s on
the 2-core CPU, 0.61 s with LSTM cells of the same size.

Headline: test accuracy on all 25,000 test reviews (measured results: BENCHMARKS.md).
Run: `exoml run imdb`, `exoml run imdb --quick` (seconds, a 2,000-review subset).
A checkpoint is written after every epoch; `exoml run imdb --resume RUN_DIR` continues a stopped run.
Predict: `exoml predict imdb "What a wonderful film"` or `exoml predict imdb --file review.txt`.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ... import data
from ...toolkit import loop, report, schedules, train
from . import tokens as text
from ...toolkit.config import Common
from .imdb_page import imdb_page
from .mingru import MinGRU
from ..contract import Headline, Profile, Reference, Task, Tuning
from ...errors import ExomlError
from ...toolkit.metrics import classification_metrics
from . import imdb_report

NAME = "imdb"


@dataclass
class Config(Common):
    # data
    vocab_size: int = 30_000     # words kept, by training-split frequency (incl. <pad>, <unk>)
    max_len: int = 800           # tokens per review; longer reviews keep their last max_len tokens
    lowercase: bool = True       # fold case before tokenising
    punctuation: str = "!?"      # punctuation marks kept as tokens of their own
    val_fraction: float = 0.1    # share of the training split held out (stratified) to pick the epoch
    train_limit: int = 0         # use only this many training reviews (0 = all 25,000)
    test_limit: int = 0          # score only this many test reviews, stratified (0 = the whole test split)
    # model
    rnn: str = field(default="lstm", metadata={"choices": ["lstm", "gru", "mingru"],
                                                "help": "recurrent cell (mingru: gates read only the input, "
                                                        "so it trains in parallel over time; mingru.py)"})
    embed_dim: int = 256         # word vector size
    hidden: int = 256            # units per direction and layer
    layers: int = 2              # stacked recurrent layers
    bidirectional: bool = True   # read each review both ways
    pooling: str = field(default="max", metadata={"choices": ["max", "mean", "maxmean", "last"],
                                                   "help": "how the per-token states become one vector"})
    dropout: float = 0.5         # on word vectors, between layers and before the classifier (one mask per review, the same at every step)
    # training
    loss: str = "binary_cross_entropy"
    optimizer: str = "adam"      # all parameters: adam | adamw | sgd | rmsprop
    lr: float = 2e-3             # peak learning rate (linear warm-up, then linear decay)
    weight_decay: float = 0.0
    batch_size: int = 64         # reviews per step
    epochs: int = 10             # passes over the training split (fewer only when --patience stops early); the best validation epoch is kept
    patience: int = 3            # early stopping: stop after this many epochs without a better validation accuracy (0: off)
    grad_clip: float = 1.0       # max gradient norm (RNNs occasionally spike)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "precision", "recall"])


PROFILES = {
    "full": Profile({}, "a 2x256 bidirectional LSTM over reviews of up to 800 tokens, max pooling, up to 10 epochs (patience 3)"),
    # chosen on the validation split (seed 0): dropout 0.5 underfits in 3 epochs (val 87.9%); 0.3
    # and 0.15 both reach ~90.4% after 4, 0.15 with the wider train/val gap
    "cpu": Profile(dict(rnn="mingru", embed_dim=128, hidden=128, layers=2, pooling="maxmean", dropout=0.3, lr=3e-3,
                        epochs=4),
                   "a 2x128 bidirectional minGRU over reviews of up to 800 tokens, max+mean pooling, 4 epochs"),
    "quick": Profile(dict(train_limit=2000, test_limit=1000, vocab_size=5000, max_len=100, embed_dim=32, hidden=32,
             layers=1, epochs=3, lr=5e-3),
                     "seconds: a smoke test of the pipeline"),
}


# ------------------------------------------------------------------ model ---------

# On the CPU a batch is cut after its longest review rounded up to a multiple of this many tokens:
# at most 25 lengths over 800 tokens instead of 800, so the big tensors of one step have the shapes of
# an earlier step and the run can keep freed memory for reuse (Task.steady_shapes) without its heap
# fragmenting. A GPU's caching allocator needs no such help: there the cut is at the longest review.
LENGTH_STEP = 32

class LockedDropout(nn.Module):
    """Dropout whose mask is drawn once per review and feature and kept at every time step
    (variational dropout, Gal & Ghahramani 2016; AWD-LSTM): a unit is dropped for the whole review,
    not re-drawn token by token, and the draw is T times smaller, which matters on a CPU, where
    drawing a mask per token took a quarter of a training step."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, h):  # (B, T, D)
        if not self.training or self.p == 0:
            return h
        keep = torch.empty(h.shape[0], 1, h.shape[2], device=h.device).bernoulli_(1 - self.p)
        return h * keep / (1 - self.p)


class SentimentRNN(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden, layers, rnn="lstm", bidirectional=True,
                 pooling="max", dropout=0.5, max_len=None):
        super().__init__()
        cells = {"lstm": lambda n: nn.LSTM(n, hidden, batch_first=True),
                 "gru": lambda n: nn.GRU(n, hidden, batch_first=True), "mingru": lambda n: MinGRU(n, hidden)}
        dirs = 2 if bidirectional else 1
        self.pooling, self.hidden, self.rnn, self.max_len = pooling, hidden, rnn, max_len
        self.trim = True  # cut the all-padding tail first (speed); off for export: a trace would fix the length
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=text.PAD)
        sizes = [embed_dim] + [hidden * dirs] * (layers - 1)
        self.fwd = nn.ModuleList(cells[rnn](n) for n in sizes)
        self.bwd = nn.ModuleList(cells[rnn](n) for n in sizes) if bidirectional else None
        self.drop = LockedDropout(dropout)
        self.head = nn.Linear(hidden * dirs * (2 if pooling == "maxmean" else 1), 1)

    def forward(self, x):                                   # x: (B, T) ids, right-padded with PAD
        lens = (x != text.PAD).sum(1).clamp(min=1)
        if self.trim:  # drop the all-padding tail of the batch (on the CPU: to a multiple of LENGTH_STEP tokens)
            step = LENGTH_STEP if x.device.type == "cpu" else 1
            x = x[:, :min(x.shape[1], -(-int(lens.max()) // step) * step)]
        elif self.rnn == "mingru" and self.max_len:
            # the chunked scan's loop count comes from the length: a trace (export) sees max_len always
            x = nn.functional.pad(x, (0, self.max_len - x.shape[1]), value=text.PAD)
        t = torch.arange(x.shape[1], device=x.device)
        mask = t[None, :] < lens[:, None]                   # (B, T) real tokens
        # Reverse each review within its own length (padding stays at the end), so the backward
        # direction is a plain forward pass that never reads a pad before a real token: exact
        # masking without packed sequences (which are slow to back-propagate on the CPU).
        rev = torch.where(mask, lens[:, None] - 1 - t[None, :], t[None, :])
        h = self.drop(self.embed(x))
        # LSTM/GRU recurrences in float32 (bf16 RNNs drift); minGRU's input products may take bf16 (its
        # scan is float32 inside MinGRU)
        with nullcontext() if self.rnn == "mingru" else torch.autocast(x.device.type, enabled=False):
            for i, f in enumerate(self.fwd):
                out = self._states(f, h)
                if self.bwd is not None:
                    idx = rev[:, :, None].expand(-1, -1, h.shape[-1])
                    back = self._states(self.bwd[i], h.gather(1, idx))
                    out = torch.cat([out, back.gather(1, rev[:, :, None].expand(-1, -1, back.shape[-1]))], -1)
                h = self.drop(out.float())
        if self.pooling == "last":  # forward state after the last token, backward state after the first
            hid = self.hidden
            z = h[torch.arange(x.shape[0], device=x.device), lens - 1, :hid]  # shape[0]: traced as the batch size
            if self.bwd is not None:
                z = torch.cat([z, h[:, 0, hid:]], -1)
        else:  # max, mean or maxmean over the real tokens
            pooled = []
            if "max" in self.pooling:
                pooled.append(h.masked_fill(~mask[:, :, None], float("-inf")).amax(1))
            if "mean" in self.pooling:
                pooled.append((h * mask[:, :, None]).sum(1) / lens[:, None])
            z = torch.cat(pooled, -1)
        return self.head(z).squeeze(-1)                     # one logit per review

    @staticmethod
    def _states(cell, h):  # (B, T, hidden) per-step states of one direction of one layer
        return cell(h)[0] if isinstance(cell, nn.RNNBase) else cell(h)


def build_model(c: dict, vocab_size: int) -> SentimentRNN:
    return SentimentRNN(vocab_size, c["embed_dim"], c["hidden"], c["layers"], c["rnn"], c["bidirectional"],
                        c["pooling"], c["dropout"], c["max_len"])


def export(run_dir, info):
    """`exoml export imdb`: the run's RNN, its vocabulary and its test reviews (imdb_export.py)."""
    from .imdb_export import export_run
    return export_run(NAME, build_model, TASK.dataset, run_dir, info)


def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-balanced random subset of size n (all rows if n is 0 or too big)."""
    if not n or n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=int(rng.integers(2**31)))
    return np.sort(keep)


def _by_length(x: np.ndarray) -> np.ndarray:
    """Order rows by length: evaluation batches then carry little padding (much faster on a CPU)."""
    return np.argsort((x != text.PAD).sum(1), kind="stable")


# ------------------------------------------------------------------ run -----------

def run(cfg: Config, run) -> tuple[dict, str]:
    g = train.seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = train.pick_device(cfg.device)
    if cfg.vocab_size < 3 or cfg.max_len < 1 or not 0 < cfg.val_fraction < 1:
        raise ExomlError("need vocab_size >= 3, max_len >= 1 and 0 < val_fraction < 1")
    ds = data.load(NAME)
    classes = ds.classes
    corpus = text.token_cache({"train": ds.train, "test": ds.test}, cfg.lowercase, cfg.punctuation)
    words = corpus["words"][:cfg.vocab_size]
    len_train = text.lengths(corpus["train_offsets"])
    y_all, y_test_all = ds.train["label"].to_numpy(), ds.test["label"].to_numpy()

    # --- explore: review lengths, label balance, frequent words per class
    imdb_report.explore(run, corpus, len_train, y_all, y_test_all, classes, cfg.max_len)

    # --- preprocess: ids padded to max_len, vocabulary cut, held-out validation from train
    train_idx = _stratified(y_all, cfg.train_limit, rng)
    test_idx = _stratified(y_test_all, cfg.test_limit, rng)
    x_all = text.pad(corpus["train_ids"], corpus["train_offsets"], cfg.max_len, cfg.vocab_size)[train_idx]
    y_all = y_all[train_idx]
    need = math.ceil(2 * len(classes) / min(cfg.val_fraction, 1 - cfg.val_fraction))  # >= 2 per class on each side
    if len(y_all) < need or np.bincount(y_all, minlength=len(classes)).min() < 2:
        raise ExomlError(f"imdb needs at least {need} training reviews, both labels present, for a stratified "
                         f"validation split of {cfg.val_fraction:g}; the imported data has {len(y_all)}")
    from sklearn.model_selection import train_test_split
    tr, va = train_test_split(np.arange(len(y_all)), test_size=cfg.val_fraction, stratify=y_all, random_state=cfg.seed)
    va = va[_by_length(x_all[va])]
    x_test = text.pad(corpus["test_ids"], corpus["test_offsets"], cfg.max_len, cfg.vocab_size)[test_idx]
    y_test = y_test_all[test_idx]
    unk_rate = float((x_test == text.UNK).sum() / max((x_test != text.PAD).sum(), 1))
    to = lambda a: torch.as_tensor(a, device=device)  # noqa: E731  (whole splits live on the device)
    x_tr, y_tr, x_va, y_va = to(x_all[tr]), to(y_all[tr]), to(x_all[va]), to(y_all[va])
    if cfg.dry_run:
        pick = np.unique(np.linspace(0, len(x_test) - 1, 64).astype(int))  # both classes (the split is sorted)
        x_tr, y_tr, x_va, y_va = x_tr[:cfg.batch_size], y_tr[:cfg.batch_size], x_va[:64], y_va[:64]
        x_test, y_test, test_idx = x_test[pick], y_test[pick], test_idx[pick]

    # --- model and compile
    model = build_model(vars(cfg), cfg.vocab_size).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    loss_fn, opt, _ = train.compile(model, cfg.loss, cfg.optimizer, cfg.lr, cfg.metrics, cfg.weight_decay)
    epochs = 1 if cfg.dry_run else cfg.epochs
    steps = schedules.steps(len(x_tr), cfg.batch_size, epochs, drop_last=False)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, warmup=0.1, shift=1))
    print(f"[imdb] {len(x_tr):,} train / {len(x_va):,} val / {len(x_test):,} test reviews, "
          f"{n_params:,} parameters on {train.device_name(device)}", flush=True)

    def show(row):
        print(f"[imdb] epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, "
              f"val accuracy {row['val_accuracy']:.4f} ({row['time_s']:.0f}s)", flush=True)

    # --- train: the weights of the best validation accuracy are kept, training stops after `patience`
    # epochs without a better one; a checkpoint after each epoch (`exoml run imdb --resume RUN_DIR`).
    # Batches hold reviews of similar lengths (loop.length_buckets), so little of each is padding.
    t0 = time.time()
    history = loop.fit(model, x_tr, y_tr, loss_fn, [opt], [sched], epochs=epochs, batch_size=cfg.batch_size,
                       metrics=cfg.metrics, validate=loop.validation(x_va, y_va, loss_fn, cfg.metrics),
                       monitor="val_accuracy", mode="max", patience=cfg.patience, grad_clip=cfg.grad_clip,
                       generator=g, drop_last=False, max_steps=1 if cfg.dry_run else None, log=run.log_epoch,
                       on_epoch=show, run=run, desc=NAME,
                       epoch_order=loop.length_buckets((x_tr != text.PAD).sum(1), cfg.batch_size))
    train_s = time.time() - t0
    best_row = max(history, key=lambda r: r["val_accuracy"])
    best, best_epoch = best_row["val_accuracy"], best_row["epoch"]

    # --- evaluate on the test split (ordered by length for speed, then put back in order)
    order = _by_length(x_test)
    logits = np.empty(len(x_test), dtype=np.float32)
    logits[order] = train.predict(model, torch.as_tensor(x_test[order]), batch_size=256).numpy()
    prob = 1 / (1 + np.exp(-logits))
    pred = (prob > 0.5).astype(np.int64)
    head, per_class, cm = classification_metrics(y_test, pred, classes)
    tp, fp, fn = int(cm[1, 1]), int(cm[0, 1]), int(cm[1, 0])
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    metrics_out = {"accuracy": head["accuracy"], "precision": precision, "recall": recall,
                   "f1": 2 * precision * recall / max(precision + recall, 1e-12), "n_test": len(y_test),
                   "best_epoch": best_epoch, "val_accuracy": best, "train_s": round(train_s, 1),
                   "test_unknown_token_rate": unk_rate, "parameters": n_params}
    ids = ds.test["id"].to_numpy()[test_idx]
    run.save_arrays("predictions.npz", index=test_idx, id=ids, label=y_test, prob_pos=prob, pred=pred)
    run.save_weights(train.state_dict_for_save(model), meta={"task": NAME, "vocab_size": cfg.vocab_size})
    run.save_json("vocab.json", words)

    # --- verification plots; report: numbers, plots, and the most confident mistakes
    imdb_report.verify(run, cm, classes, prob, y_test, x_test)
    quotes = imdb_report.mistakes(ds.test["text"], test_idx, ids, y_test, pred, prob, classes)
    intro = imdb_report.intro(cfg.rnn, n_params, train.device_name(device), len(y_test))
    sections = imdb_report.sections(cfg, ds, corpus, len_train, unk_rate, len(x_va), best, best_epoch, train_s, per_class, quotes)
    return metrics_out, report.render("IMDB sentiment: bidirectional RNN", intro, cfg, metrics_out, sections)


# ------------------------------------------------------------------ predict -------

def add_predict_args(parser) -> None:
    parser.add_argument("text", nargs="?", help="the review, as one quoted argument")
    parser.add_argument("--file", type=Path, help="a UTF-8 text file holding the review")


def predict(args) -> int:
    return imdb_report.predict_review(args, NAME, build_model)


TASK = Task(
    name=NAME, exercise="IMDB review sentiment", dataset="imdb",
    model="RNN from scratch: word embedding, 2-layer bidirectional minGRU (cpu profile) or LSTM (full), "
          "max(+mean) pooling, linear",
    headline=Headline("accuracy", "test accuracy"),
    reference=Reference("84.3% test accuracy (Keras bidirectional LSTM example); 88.9% (Maas et al. 2011)", 0.843,
                        "keras.io examples; ACL 2011"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=imdb_page(NAME, build_model),
    tuning=Tuning("val_accuracy"), steady_shapes=True, export=export)
