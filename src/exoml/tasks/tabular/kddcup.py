r"""KDD Cup 1999: network anomaly detection with an autoencoder, against Isolation Forest, a one-class SVM,
sanity baselines and a nearest-neighbour distance.

Data: the 10% training file (494,021 connections) and the labelled test file `corrected` (311,029), 41 features
each. Preprocessing, fit on the training part only: one-hot protocol_type/service/flag (values unseen in training
-> all zeros), log1p of the heavy-tailed counts, standardisation (the preprocessing of GOAD and NeuTraL AD, plus log1p).
Protocol A (DAGMM, GOAD, NeuTraL AD): 10% file only; `normal` is the anomaly class (about 20%); train on a random
50% of the attack rows, test on the other 50% plus every normal row; the threshold flags as many test rows as there
are anomalies (the percentile of the anomaly share); precision = recall = F1 up to ties. Mean ± std over `seeds`
random splits, with ROC AUC and PR AUC, beside two sanity baselines that learn and choose nothing (the
autoencoder's shape untrained, Isolation Forest with scikit-learn's defaults): how easy the protocol is.
Protocol B (intrusion detection): train on the normal rows of the 10% file, test on `corrected` (17 attack types
never seen in training); threshold = the (1 - fpr_target) quantile of the scores of held-out normal training rows;
precision, recall, F1, ROC AUC, PR AUC, and recall per attack category and per attack, also of a k-nearest-
neighbour distance to normal training rows (local, for the r2l attacks the others miss; validation F1 and recall
on the 10% file's r2l rows in the report). About half the r2l test rows (snmpgetattack) have the 41 features of a
normal row: no detector on these features can flag them without flagging that normal traffic; the report counts
them.
Models: a tanh autoencoder (reconstruction MSE is the anomaly score; ours), Isolation Forest, and a one-class SVM
(RBF kernel by Nystroem features + SGD). Choices are made on validation data, never on test rows: in protocol A
each method's scaler (standard or min-max) and the autoencoder's epochs (5, 20 or 60) by F1 on held-out training
attacks (inliers) plus 10,000 normal rows of `corrected` (anomalies: that file is not part of A's test split); in
protocol B each method's scaler by F1 on held-out normal rows plus attack rows of the 10% file.
Protocol B's detectors are saved for new records: the autoencoder (model.safetensors, model.json) and the
Isolation Forest and one-class SVM as arrays (detectors.json, kddcup_portable); predict gives each one's verdict.
Measured results: BENCHMARKS.md.

    exoml run kddcup                       # both protocols, 10 seeds for A
    exoml run kddcup --protocols B         # the intrusion detector only
    exoml predict kddcup --row \
        '0,tcp,http,SF,181,5450,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,8,8,0,0,0,0,1,0,0,9,9,1,0,0.11,0,0,0,0,0'
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ... import data
from ...toolkit import plots, train
from ...toolkit.config import Common
from .pages import kddcup_page
from ..contract import Headline, Profile, Reference, Task
from ...errors import ExomlError
from . import kddcup_portable, kddcup_report
from . import common as tabular
from .kddcup_detectors import BASELINES, KNN, METHODS, AutoEncoder, ae_score, choose_a, choose_b, fit_score
from .common import ONE_HOT, SCALERS, aucs, encode, features, fit_prep, prf

NAME = "kddcup"
# Categories of the 17 attacks that occur only in `corrected` (training_attack_types lists the 22
# training ones), from the DARPA 1998/99 attack descriptions; httptunnel is u2r in the common
# mapping (some sources say r2l).
TEST_ONLY_TYPES = {"apache2": "dos", "mailbomb": "dos", "processtable": "dos", "udpstorm": "dos",
                   "mscan": "probe", "saint": "probe", "named": "r2l", "sendmail": "r2l", "snmpgetattack": "r2l",
                   "snmpguess": "r2l", "worm": "r2l", "xlock": "r2l", "xsnoop": "r2l", "httptunnel": "u2r",
                   "ps": "u2r", "sqlattack": "u2r", "xterm": "u2r"}


@dataclass
class Config(Common):
    protocols: list[str] = field(default_factory=lambda: ["A", "B"],
                                 metadata={"help": "A (DAGMM's), B (intrusion)"})
    seeds: int = 10                   # protocol A: random 50/50 splits, seeds seed, seed+1, ...
    hidden: list[int] = field(default_factory=lambda: [64, 32, 8],
                              metadata={"help": "autoencoder encoder widths (decoder mirrors them)"})
    loss: str = "mse"                 # reconstruction loss
    optimizer: str = "adam"           # the autoencoder's parameters: adam | adamw | sgd | rmsprop
    lr: float = 1e-3                  # peak learning rate (one-cycle: 10% warm-up, linear decay to 0)
    weight_decay: float = 0.0
    batch_size: int = 1024            # rows per step
    epochs: int = 5                   # protocol B: autoencoder passes over the training rows (protocol A picks from --epochs-a on validation)
    metrics: list[str] = field(default_factory=lambda: ["mae"])
    val_fraction: float = 0.1         # training rows held out: validation loss; protocol B threshold
    scalers_a: list[str] = field(default_factory=lambda: list(SCALERS), metadata={"help": "protocol A candidates, "
                                 "chosen per method by F1 on protocol A's validation set"})
    epochs_a: list[int] = field(default_factory=lambda: [5, 20, 60], metadata={"help": "protocol A: autoencoder "
                                "epochs candidates, chosen with the scaler"})
    a_val_normals: int = 10000        # protocol A validation anomalies: normal rows of `corrected` (not A's test)
    scalers_b: list[str] = field(default_factory=lambda: list(SCALERS), metadata={"help": "protocol B candidates, "
                                 "chosen per method by F1 on a validation set from the 10%% file"})
    b_val_attacks: int = 10000        # protocol B validation: attack rows of the 10% file (never used for training)
    fpr_target: float = 0.01          # protocol B: flag scores above this upper quantile of held-out normal rows
    if_trees: int = 100               # Isolation Forest trees (256 rows each)
    ocsvm_components: int = 100       # Nystroem features approximating the RBF kernel
    ocsvm_gamma: float = 0.0          # RBF kernel width, 1 / (feature units)^2 (0: 1 / number of features)
    ocsvm_nu: float = 0.1             # one-class SVM: upper bound on the training share outside the boundary
    knn_k: int = 5                    # protocol B's nearest-neighbour detector: neighbours averaged
    knn_reference: int = 20000        # protocol B's kNN detector: distinct normal training rows it measures against (a random sample)
    train_subset: int = 0             # use a random N rows of the 10% file (0: all; quick runs)
    test_subset: int = 0              # protocol B: a random N rows of `corrected` (0: all)
    threads: int = 0                  # CPU threads for numpy/scikit-learn/torch (0: library defaults)


PROFILES = {
    "full": Profile({}, "protocols A (10 seeds) and B on all rows"),
    "cpu": Profile({}, "the full study: minutes on a CPU"),
    "quick": Profile(dict(seeds=2, epochs=3, epochs_a=[3], batch_size=256, train_subset=20000, test_subset=20000, if_trees=30,
             ocsvm_components=30, knn_reference=2000),
                     "seconds: a smoke test of the pipeline"),
}


def subsets(tr: pd.DataFrame, te: pd.DataFrame, train_subset: int, test_subset: int, rng) -> tuple:
    """The rows a run uses: a random `train_subset` of the 10% file, then a random `test_subset` of
    `corrected` (0: all), drawn from rng in that order."""
    if train_subset and train_subset < len(tr):
        tr = tr.iloc[np.sort(rng.choice(len(tr), train_subset, replace=False))].reset_index(drop=True)
    if test_subset and test_subset < len(te):
        te = te.iloc[np.sort(rng.choice(len(te), test_subset, replace=False))].reset_index(drop=True)
    return tr, te


def export(run_dir, info):
    """`exoml export kddcup`: protocol B's autoencoder and the test records it scored (kddcup_export.py)."""
    from .kddcup_export import export_run
    return export_run(NAME, run_dir, info)


def run(cfg: Config, run) -> tuple[dict, str]:
    bad = sorted(set(cfg.protocols) - {"A", "B"})
    if bad or not cfg.protocols:
        raise ExomlError(f"--protocols: choose from A and B (got {', '.join(cfg.protocols)})")
    if cfg.knn_k < 1 or cfg.knn_reference < 1:
        raise ExomlError(f"--knn-k and --knn-reference must be at least 1 (got {cfg.knn_k} and {cfg.knn_reference})")
    with tabular.threads(cfg.threads):
        return _run(cfg, run)


def _run(cfg: Config, run) -> tuple[dict, str]:
    t_start = time.time()
    train.seed_everything(cfg.seed)
    ds = data.load(NAME)
    tr, te = ds.train, ds.test
    rng = np.random.default_rng(cfg.seed)
    tr, te = subsets(tr, te, cfg.train_subset, cfg.test_subset, rng)
    numeric = [c for c in ds.feature_names if c not in ONE_HOT]
    types = {**TEST_ONLY_TYPES, **ds.attack_types, "normal": "normal"}
    lab_tr, lab_te = tr["label"].astype(str).to_numpy(), te["label"].astype(str).to_numpy()
    cat_tr, cat_te = (np.array([types.get(a, "unknown") for a in lab]) for lab in (lab_tr, lab_te))

    # explore: what the two files hold
    groups = ["normal", "dos", "probe", "r2l", "u2r", "unknown"]
    run.save_figure(kddcup_report.data_figure({"10% file": cat_tr, "corrected": cat_te}, groups), "data.png")
    num_tr, sym_tr = encode(tr, numeric)
    metrics, sections, arrays, curves = {}, [], {}, {}
    split_n = lambda idx, frac: (idx[max(1, int(len(idx) * frac)):],  # noqa: E731  (fit, val)
                                 idx[:max(1, int(len(idx) * frac))])
    take = lambda idx: (num_tr[idx], {c: v[idx] for c, v in sym_tr.items()})  # noqa: E731

    # protocol A: normal traffic is the anomaly; train on half the attacks
    num_te, sym_te = encode(te, numeric)
    if "A" in cfg.protocols:
        res, t0, chosen = {m: [] for m in METHODS + BASELINES}, time.time(), None
        nor_te = np.flatnonzero(lab_te == "normal")
        vnor = np.sort(rng.choice(nor_te, min(cfg.a_val_normals, len(nor_te)), replace=False))
        x_vnor_for = lambda prep: features(prep, num_te[vnor], {c: v[vnor] for c, v in sym_te.items()})  # noqa: E731
        for s in range(cfg.seed, cfg.seed + (1 if cfg.dry_run else cfg.seeds)):
            r = np.random.default_rng(s)
            att, nor = r.permutation(np.flatnonzero(lab_tr != "normal")), np.flatnonzero(lab_tr == "normal")
            train_idx, test_idx = att[:len(att) // 2], np.concatenate([att[len(att) // 2:], nor])
            y = lab_tr[test_idx] == "normal"
            fit_idx, val_idx = split_n(train_idx, cfg.val_fraction)
            preps = {}
            prep_for = lambda kind: preps.setdefault(kind, fit_prep(*take(train_idx), numeric, kind))  # noqa: E731
            if chosen is None:  # settings chosen once, on the first split's validation set
                chosen, choice_a = choose_a(cfg, run, prep_for, take, fit_idx, val_idx, x_vnor_for, s)
                chosen |= {b: (chosen["autoencoder"][0], None) for b in BASELINES}  # the autoencoder's input
            scores, secs = {}, {}
            for m, (kind, ep) in chosen.items():
                prep = prep_for(kind)
                x_fit, x_val, x_test = (features(prep, *take(i)) for i in (fit_idx, val_idx, test_idx))
                sc, sec, _ = fit_score(cfg, run, x_fit, x_val, {"test": x_test}, s, "A", [m], ep)
                scores |= sc
                secs |= sec
            arrays |= {f"a{s}_index": test_idx.astype(np.int32), f"a{s}_y": y}
            for m in res:
                sc = scores[m]["test"]
                thr = np.percentile(sc, 100 * (1 - y.mean()))  # flag as many rows as there are anomalies
                res[m].append({**prf(y, sc > thr), **aucs(y, sc), "threshold": thr, "seconds": secs[m]})
                arrays[f"a{s}_{m}"] = sc.astype(np.float32)
                if s == cfg.seed:
                    curves[("A", m)] = (y, sc, thr)
        rows, summary = kddcup_report.summary_a(res, chosen)  # mean ± std over the splits
        metrics |= summary
        metrics["A_seeds"] = len(res["autoencoder"])
        metrics |= {f"A_{m}_scaler": kind for m, (kind, _) in chosen.items()}
        metrics["A_autoencoder_epochs"] = chosen["autoencoder"][1]
        metrics = {"A_f1": metrics["A_autoencoder_f1_mean"], **metrics}
        sections.append(kddcup_report.protocol_a(cfg, rows, choice_a, metrics["A_seeds"], len(train_idx), len(fit_idx),
                                     len(val_idx), y, len(vnor), time.time() - t0))

    # protocol B: train on normal traffic, test on `corrected`
    if "B" in cfg.protocols:
        t0 = time.time()
        r = np.random.default_rng(cfg.seed)
        fit_idx, val_idx = split_n(r.permutation(np.flatnonzero(lab_tr == "normal")), cfg.val_fraction)
        att = np.flatnonzero(lab_tr != "normal")
        vatt_idx = r.choice(att, min(cfg.b_val_attacks, len(att)), replace=False)  # validation attacks (10% file)
        vr2l_idx = np.flatnonzero(cat_tr == "r2l")  # never trained on in B: validation of the r2l recall
        methods_b = METHODS + [KNN]
        fits, fitted = {}, {}  # every method with every scaler; each then keeps the scaler of its best validation F1
        for kind in cfg.scalers_b:
            prep = fit_prep(*take(fit_idx), numeric, kind)
            x_fit, x_val, x_vatt = (features(prep, *take(i)) for i in (fit_idx, val_idx, vatt_idx))
            x_eval = {"val": x_val, "vatt": x_vatt, "test": features(prep, num_te, sym_te)}
            if len(vr2l_idx):
                x_eval["vr2l"] = features(prep, *take(vr2l_idx))
            sc, sec, ae = fit_score(cfg, run, x_fit, x_val, x_eval, cfg.seed, f"B-{kind}", METHODS,
                                   fitted=fitted.setdefault(kind, {}))
            # a kNN distance costs a distance to every reference row: its test rows are scored once,
            # with the scaler chosen below
            sc_k, sec_k, _ = fit_score(cfg, run, x_fit, x_val, {k: v for k, v in x_eval.items() if k != "test"},
                                       cfg.seed, f"B-{kind}", [KNN], fitted=fitted[kind])
            fits[kind] = ({**sc, **sc_k}, {**sec, **sec_k}, ae, prep, x_fit.shape[1])
        best, choice = choose_b(fits, cfg.fpr_target, methods_b)  # {method: scaler}, the table of candidates
        t_knn, (sc, sec, _, prep_knn, _) = time.time(), fits[best[KNN]]
        sc[KNN]["test"] = -fitted[best[KNN]][KNN].score_samples(features(prep_knn, num_te, sym_te))
        sec[KNN] += time.time() - t_knn
        scores, secs = {m: fits[k][0][m] for m, k in best.items()}, {m: fits[k][1][m] for m, k in best.items()}
        _, _, ae, prep, input_dim = fits[best["autoencoder"]]
        y = lab_te != "normal"
        # test rows whose 41 features equal those of some normal row (10% file or `corrected`): a detector
        # scores them as it scores that normal row, so it cannot flag them without a false alarm
        keys_tr, keys_te = _row_keys(num_tr, sym_tr), _row_keys(num_te, sym_te)
        twin = np.isin(keys_te, np.union1d(keys_tr[lab_tr == "normal"], keys_te[lab_te == "normal"])) & y
        rows, per_cat = [], pd.DataFrame({"attack": lab_te, "category": cat_te, "same features as a normal row": twin})
        for m in methods_b:
            thr = float(np.quantile(scores[m]["val"], 1 - cfg.fpr_target))
            pred = scores[m]["test"] > thr
            row = {**prf(y, pred), **aucs(y, scores[m]["test"]),
                   "false_alarm_rate": pred[~y].mean() if (~y).any() else 0.0}
            row |= {f"recall_{g}": pred[cat_te == g].mean() for g in groups[1:] if (cat_te == g).any()}
            rows.append({"method": m, "scaler": best[m], **row, "threshold": thr, "seconds": secs[m]})
            metrics |= {f"B_{m}_{k}": float(v) for k, v in row.items()} | {f"B_{m}_threshold": thr,
                                                                              f"B_{m}_scaler": best[m]}
            arrays |= {f"b_{m}": scores[m]["test"].astype(np.float32),
                       f"b_val_{m}": scores[m]["val"].astype(np.float32)}
            curves[("B", m)] = (y, scores[m]["test"], thr)
            per_cat[m] = pred
        per_cat = per_cat[y]
        metrics |= {f"B_{g}_same_as_normal_share": float(twin[cat_te == g].mean())
                    for g in groups[1:] if (cat_te == g).any()}
        names = sorted(set(lab_te))
        arrays |= {"b_label": np.searchsorted(names, lab_te).astype(np.int16), "b_label_names": np.array(names),
                   "b_y": y}
        metrics = {"B_f1": metrics["B_autoencoder_f1"], "B_roc_auc": metrics["B_autoencoder_roc_auc"], **metrics}
        run.save_weights(train.state_dict_for_save(ae), meta={"task": NAME, "protocol": "B", "hidden": cfg.hidden})
        # the other two detectors as arrays (each with its own scaler and threshold), for predict and serve
        tabular.save_model(run, "detectors.json", {"task": NAME, **{
            m: {"prep": fits[best[m]][3], "threshold": metrics[f"B_{m}_threshold"],
                "model": kddcup_portable.export(m, fitted[best[m]][m], features(fits[best[m]][3], num_te[:200],
                                                                              {c: v[:200] for c, v in sym_te.items()}))}
            for m in METHODS if m != "autoencoder"}})
        tabular.save_model(run, "model.json", {"task": NAME, "prep": prep, "hidden": cfg.hidden, "input_dim": input_dim,
                                         "threshold": metrics["B_autoencoder_threshold"], "fpr_target": cfg.fpr_target,
                                         "features": list(ds.feature_names)})
        sections.append(kddcup_report.protocol_b(cfg, rows, choice, per_cat, set(lab_tr), len(fit_idx), len(val_idx),
                                     len(vatt_idx), len(vr2l_idx), y, time.time() - t0))

    # verification plots: PR/ROC curves, score histograms, confusion matrices
    protos = [p for p in ("A", "B") if p in cfg.protocols]
    kddcup_report.detection_plots(run, curves, protos)
    tag = f"B-{metrics['B_autoencoder_scaler']}" if "B" in protos else "A"
    hist = [h for h in run.history if h["protocol"] == tag and h["seed"] == cfg.seed]
    run.save_figure(plots.history_curves(hist, keys=[["train_loss", "val_loss"]],
                                         title=f"autoencoder, protocol {tag}"), "history.png")
    run.save_arrays("predictions.npz", **arrays)

    metrics["wall_s"] = time.time() - t_start
    return metrics, kddcup_report.write_up(cfg, metrics, sections, protos, len(tr), len(te))


def _row_keys(num: np.ndarray, sym: dict) -> np.ndarray:
    """One 64-bit hash per row of the encoded features: equal rows, equal keys."""
    return pd.util.hash_pandas_object(pd.DataFrame(num).assign(**sym), index=False).to_numpy()


def add_predict_args(parser) -> None:
    kddcup_report.add_record_args(parser)


def load_detector(run_dir, info: dict) -> tuple[dict, AutoEncoder]:
    """(model.json, the protocol-B autoencoder) of a kddcup run: trained on normal traffic only.
    model.json's "detectors" holds the run's Isolation Forest and one-class SVM (detectors.json) when
    the run saved them."""
    from ...toolkit.weights import load_state
    if "B" not in info.get("config", {}).get("protocols", ["B"]):
        raise ExomlError(f"{run_dir} ran protocol A only; predict uses protocol B's detector (trained on normal "
                         "traffic): train one with `exoml run kddcup --protocols B`")
    m = tabular.load_model(run_dir, "model.json", NAME)
    ae = AutoEncoder(m["input_dim"], m["hidden"])
    load_state(ae, run_dir / "model.safetensors", NAME)
    if (run_dir / "detectors.json").is_file():
        m["detectors"] = {k: v for k, v in tabular.load_model(run_dir, "detectors.json", NAME).items() if k != "task"}
    return m, ae.eval()


def score_records(m: dict, ae: AutoEncoder, lines: list[tuple[str, str]]) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """(the parsed records, their anomaly scores: the autoencoder's reconstruction error, and
    {detector: (its scores, its threshold)} of the other detectors the run saved)."""
    df = tabular.parse_records(lines, m["features"])
    num, sym = encode(df, m["prep"]["numeric"])
    others = {k: (kddcup_portable.score(d["model"], features(d["prep"], num, sym)), d["threshold"])
              for k, d in m.get("detectors", {}).items()}
    return df, ae_score(ae, torch.from_numpy(features(m["prep"], num, sym))), others


def predict(args) -> int:
    from ...toolkit.runs import Run
    from ...toolkit.weights import open_run
    run_dir, info = open_run(NAME, args.run, args.out)
    m, ae = load_detector(run_dir, info)
    lines, stem = kddcup_report.read_records(args.row, args.csv)
    df, score, others = score_records(m, ae, lines)
    thr = m["threshold"]
    kddcup_report.print_scores(lines, df, score, thr, m["prep"]["categories"])
    for name, (s, t) in others.items():
        print(f"{name.replace('_', ' ')}: " + ", ".join(f"row {i} {'ATTACK' if v > t else 'normal'}"
                                                        for i, v in enumerate(s, 1)))
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as p:
        val, test, y = p["b_val_autoencoder"], p["b_autoencoder"], p["b_y"]
    fig = kddcup_report.score_figure(val, test, y, thr, score)
    path = Run(run_dir).save_figure(fig, tabular.prediction_figure_path(run_dir, stem))
    print(f"plot: {path}")
    return 0


TASK = Task(
    name=NAME, exercise="KDD Cup 99 network anomaly detection", dataset="kddcup",
    model="autoencoder (reconstruction error), Isolation Forest, one-class SVM; sanity baselines (untrained "
          "autoencoder, default Isolation Forest); kNN distance (protocol B)",
    headline=Headline("A_f1", "F1 of the autoencoder, protocol A"),
    reference=Reference("precision 0.930, recall 0.944, F1 0.937 (DAGMM)", 0.937, "Zong et al., ICLR 2018"),
    page=kddcup_page(),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args, export=export,
    tune_note="its choices (scaler, epochs) are made per method by F1 on validation inside the run")
