"""The IMDB task's figures and report text (data, training, evaluation, the most confident
mistakes), and one review read with a run's model (load_sentiment, positive_probability,
word_influence: shared by `exoml predict imdb` and `exoml serve`)."""
from __future__ import annotations

import json

import numpy as np
import torch

from ...toolkit import plots, report, train
from . import tokens as text
from ...errors import ExomlError
from . import imdb_plots


def shorten(s: str, n: int = 300) -> str:
    s = " ".join(text._BR.sub(" ", s).split())
    return s if len(s) <= n else s[:n].rsplit(" ", 1)[0] + " …"


def explore(run, corpus: dict, len_train, y_train, y_test, classes: list[str], max_len: int) -> None:
    """Review lengths, label balance, frequent words per class."""
    run.save_figure(imdb_plots.review_lengths(len_train, y_train, classes, max_len), "lengths.png")
    run.save_figure(imdb_plots.label_balance(y_train, y_test, classes), "labels.png")
    run.save_figure(imdb_plots.top_words(corpus, y_train, classes), "top_words.png")


def verify(run, cm, classes: list[str], prob, y_test, x_test) -> None:
    """Learning curves, test confusion matrix, predicted probabilities and accuracy by length."""
    run.save_figure(plots.history_curves(run.history), "curves.png")
    run.save_figure(plots.confusion_matrix(cm, classes, normalize=False, title="test confusion matrix"),
                    "confusion.png")
    run.save_figure(imdb_plots.probabilities(prob, y_test, (x_test != text.PAD).sum(1)), "probabilities.png")


def mistakes(texts, test_idx, ids, y_test, pred, prob, classes: list[str], n: int = 6) -> str:
    """The n most confident wrong test predictions as a markdown list of shortened quotes."""
    wrong = np.flatnonzero(pred != y_test)
    worst = wrong[np.argsort(-np.abs(prob[wrong] - 0.5))][:n]
    return "\n".join(f"- true **{classes[y_test[i]]}**, predicted {classes[pred[i]]} "
                     f"(p(pos) = {prob[i]:.3f}), test id {ids[i]}: “{shorten(texts.iloc[test_idx[i]])}”"
                     for i in worst) or "_(none)_"


def intro(rnn: str, n_params: int, device_name: str, n_test: int) -> str:
    cell = {"mingru": "minGRU"}.get(rnn, rnn.upper())
    return (f"Bidirectional {cell} sentiment classifier trained from scratch on IMDB "
            f"({n_params:,} parameters, {device_name}). Test metrics on "
            f"{n_test:,} test reviews{'' if n_test == 25_000 else ' (a subset: not the full test split)'}.")


def sections(cfg, ds, corpus: dict, len_train, unk_rate: float, n_val: int, best: float, best_epoch: int,
             train_s: float, per_class, quotes: str) -> list[tuple[str, str]]:
    return [
        ("Data", f"{len(ds.train):,} training and {len(ds.test):,} test reviews. Median length "
                 f"{int(np.median(len_train))} tokens (95th percentile {int(np.percentile(len_train, 95))}); "
                 f"reviews longer than {cfg.max_len} tokens keep their last {cfg.max_len}. Vocabulary: the "
                 f"{cfg.vocab_size:,} most frequent training words (of {len(corpus['words']):,}); "
                 f"{unk_rate:.1%} of test tokens are unknown. Validation: {n_val:,} held-out training reviews.\n\n"
                 f"{report.img('lengths.png')}\n\n{report.img('labels.png')}\n\n{report.img('top_words.png')}"),
        ("Training", f"Best validation accuracy {best:.4f} at epoch {best_epoch}; {train_s:.0f} s of training.\n\n"
                     f"{report.img('curves.png')}"),
        ("Evaluation", f"{report.md_table(per_class)}\n\n{report.img('confusion.png')}\n\n"
                       f"{report.img('probabilities.png')}"),
        ("Most confident mistakes (shortened)", quotes),
    ]


def load_sentiment(run_dir, info: dict, task: str, build_model) -> tuple:
    """(model in eval mode, vocabulary, the run's settings) of an imdb run: what `exoml predict` and
    `exoml serve` read reviews with."""
    from ...toolkit.weights import load_state
    c = info["config"]
    try:
        words = json.loads((run_dir / "vocab.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ExomlError(f"{run_dir} has no readable vocab.json") from None
    model = build_model(c, c["vocab_size"])
    load_state(model, run_dir / "model.safetensors", task=task)
    return model.eval(), words, c


def encode_review(review: str, words: list[str], c: dict) -> np.ndarray:
    return text.encode(review, words, c["max_len"], c["lowercase"], c["punctuation"])


def positive_probability(model, ids: torch.Tensor) -> np.ndarray:
    """p(positive) of each row of right-padded token ids (B, T)."""
    return torch.sigmoid(train.predict(model, ids, batch_size=64)).numpy()


def word_influence(model, review: str, words: list[str], c: dict) -> tuple[float, list[tuple[str, float]]]:
    """(p(positive), [(token, influence)]) by occlusion: a token's influence is p(positive) of the
    review minus p(positive) with that token left out (positive: it pushed the verdict towards
    positive). Only the tokens the model reads (the last max_len) are scored."""
    toks = text.tokenize(review, c["lowercase"], c["punctuation"])[-c["max_len"]:]
    ids = encode_review(review, words, c)[0]
    n = len(ids)
    batch = torch.zeros((n + 1, max(n, 1)), dtype=torch.long)
    batch[0, :n] = torch.as_tensor(ids)
    for i in range(n):
        rest = np.delete(ids, i)
        batch[i + 1, :len(rest)] = torch.as_tensor(rest)
    if n == 1:  # nothing is left without the only token: its influence is its distance from a coin toss
        batch = batch[:1]
    probs = positive_probability(model, batch)
    p = float(probs[0])
    drops = p - probs[1:] if n > 1 else np.array([p - 0.5])
    return p, [(t if i != text.UNK else f"{t}?", float(d)) for t, i, d in zip(toks, ids, drops)]


def predict_review(args, task: str, build_model) -> int:
    """Classify the review of args.text / args.file with the run's model; plot p(positive) after each
    prefix of it (how the verdict builds up)."""
    from ...toolkit.runs import Run
    from ...toolkit.weights import open_run
    review, name = text.read_text_input(args.text, args.file)
    run_dir, info = open_run(task, args.run, args.out)
    model, words, c = load_sentiment(run_dir, info, task, build_model)
    ids = encode_review(review, words, c)
    n = ids.shape[1]
    cuts = np.unique(np.linspace(1, n, min(n, 60)).round().astype(int))
    prefixes = torch.zeros((len(cuts), n), dtype=torch.long)
    for i, k in enumerate(cuts):
        prefixes[i, :k] = torch.as_tensor(ids[0, :k])
    probs = positive_probability(model, prefixes)
    p = float(probs[-1])
    label = "positive" if p > 0.5 else "negative"
    known = float((ids != text.UNK).mean())
    print(f"{label} (p(positive) = {p:.3f}; {n} tokens, {known:.0%} in the vocabulary)")

    fig = imdb_plots.reading(cuts, probs, shorten(review, 110))
    out = Run(run_dir).save_figure(fig, f"predictions/{name}.png")
    print(f"plot: {out}")
    return 0
