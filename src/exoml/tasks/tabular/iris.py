"""Iris: K-means clustering of 150 flowers from 4 measurements (cm), clusters visualised.

Data: Fisher's Iris, 150 flowers, 3 species of 50 (scikit-learn's bundled copy). The species are
never shown to the clustering; they are used only to evaluate it (ARI, AMI, homogeneity,
completeness, accuracy after the best one-to-one matching of clusters to species, Hungarian
algorithm). There is no train/test split: clustering describes these 150 flowers.
Models: K-means (k = 1..k_max) on the raw and on standardised features (elbow and silhouette
curves), then k = 3 in depth: K-means raw, K-means standardised and a full-covariance Gaussian
mixture, one row each in one table.
Measured results: BENCHMARKS.md.

    exoml run iris
    exoml predict iris --row '{"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}'
    exoml predict iris --row '[6.3, 2.9, 5.6, 1.8]'        (or --csv FILE)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from ... import data
from ...toolkit import plots, report, train
from ...toolkit.config import Common
from .pages import iris_page
from ..contract import Headline, Profile, Reference, Task
from . import common as tabular

NAME = "iris"
plt = plots.plt
COLORS = np.array(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"])
MARKERS = ["o", "s", "^", "D", "v"]


@dataclass
class Config(Common):
    # at most 149: 150 flowers, and a silhouette needs fewer clusters than points
    k: int = field(default=3, metadata={"min": 1, "max": 149})      # clusters studied in depth (3 species)
    k_max: int = field(default=10, metadata={"min": 1, "max": 149})  # elbow and silhouette curves for k = 1..k_max
    n_init: int = 10                  # K-means restarts (the run with the lowest inertia is kept)
    gmm_covariance: str = "full"      # Gaussian mixture covariance: full | tied | diag | spherical
    gmm_n_init: int = 5               # Gaussian mixture restarts (highest likelihood kept)
    threads: int = 0                  # CPU threads for numpy/scikit-learn (0: library defaults)


PROFILES = {
    "full": Profile({}, "elbow and silhouette curves for k = 1..10"),
    "cpu": Profile({}, "the full study: seconds on a CPU"),
    "quick": Profile(dict(k_max=6),
                     "seconds: a smoke test of the pipeline"),
}


def matching(y_true, labels, complete: bool = False) -> dict[int, int]:
    """The one-to-one cluster -> class map that maximises agreement (Hungarian algorithm).
    With more clusters than classes some stay unmatched; `complete` maps those to their majority class."""
    n_cls, n_clu = int(y_true.max()) + 1, int(labels.max()) + 1
    cm = skm.confusion_matrix(y_true, labels, labels=np.arange(max(n_cls, n_clu)))[:n_cls, :n_clu]
    rows, cols = linear_sum_assignment(-cm)  # rows: classes, columns: clusters; rectangular is fine
    m = {int(c): int(r) for r, c in zip(rows, cols)}
    if complete:
        m |= {int(c): int(cm[:, c].argmax()) for c in np.unique(labels) if int(c) not in m}
    return m


def evaluate(X, y, labels) -> dict:
    m = matching(y, labels)
    mapped = np.array([m.get(int(c), -1) for c in labels])
    return {"ari": skm.adjusted_rand_score(y, labels), "ami": skm.adjusted_mutual_info_score(y, labels),
            "homogeneity": skm.homogeneity_score(y, labels), "completeness": skm.completeness_score(y, labels),
            "silhouette_raw": skm.silhouette_score(X, labels) if len(set(labels)) > 1 else float("nan"),
            "accuracy": float((mapped == y).mean())}


def run(cfg: Config, run) -> tuple[dict, str]:
    with tabular.threads(cfg.threads):
        return _run(cfg, run)


def _run(cfg: Config, run) -> tuple[dict, str]:
    train.seed_everything(cfg.seed)
    ds = data.load(NAME)
    feats, classes = list(ds.feature_names), list(ds.classes)
    X, y = ds.frame[feats].to_numpy(), np.asarray(ds.target)
    Xs = StandardScaler().fit_transform(X)  # no split: the scaler sees the 150 flowers being clustered
    n_init = 1 if cfg.dry_run else cfg.n_init

    # choosing k: inertia (elbow) and silhouette for k = 1..k_max, raw and standardised
    for k in range(1, 2 if cfg.dry_run else cfg.k_max + 1):
        row = {"k": k}
        for tag, Z in (("raw", X), ("std", Xs)):
            km = KMeans(k, n_init=n_init, random_state=cfg.seed).fit(Z)
            row[f"inertia_{tag}"] = km.inertia_
            row[f"silhouette_{tag}"] = skm.silhouette_score(Z, km.labels_) if k > 1 else float("nan")
        run.log_epoch(row)
    ks = [h["k"] for h in run.history]
    best_k = {t: max(run.history, key=lambda h: np.nan_to_num(h[f"silhouette_{t}"], nan=-1))["k"] for t in ("raw", "std")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for tag, label in (("raw", "raw features"), ("std", "standardised")):
        axes[0].plot(ks, [h[f"inertia_{tag}"] for h in run.history], marker="o", label=label)
        axes[1].plot(ks, [h[f"silhouette_{tag}"] for h in run.history], marker="o", label=label)
    axes[0].set(xlabel="k", ylabel="inertia (within-cluster sum of squares)", title="elbow")
    axes[1].set(xlabel="k", ylabel="mean silhouette", title="silhouette")
    for ax in axes:
        ax.axvline(cfg.k, color="grey", ls=":")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(fig, "choose_k.png")

    # k = 3 in depth: three methods, one table
    km_raw = KMeans(cfg.k, n_init=n_init, random_state=cfg.seed).fit(X)
    km_std = KMeans(cfg.k, n_init=n_init, random_state=cfg.seed).fit(Xs)
    gmm = GaussianMixture(cfg.k, covariance_type=cfg.gmm_covariance, n_init=1 if cfg.dry_run else cfg.gmm_n_init,
                          random_state=cfg.seed).fit(X)
    labels = {"kmeans_raw": km_raw.labels_, "kmeans_std": km_std.labels_, "gmm_raw": gmm.predict(X)}
    rows = [{"method": m, **evaluate(X, y, lab)} for m, lab in labels.items()]
    metrics = {f"{r['method']}_{k}": v for r in rows for k, v in r.items() if k != "method"}
    metrics = {"ari": metrics["kmeans_raw_ari"], "accuracy": metrics["kmeans_raw_accuracy"], **metrics}

    # the model of the predictions: raw K-means, its centroids and cluster -> species map, as JSON
    species_of = matching(y, km_raw.labels_, complete=True)
    pca = PCA(2).fit(X)
    P, C = pca.transform(X), pca.transform(km_raw.cluster_centers_)
    tabular.save_model(run, "model.json", {"task": NAME, "features": feats, "classes": classes,
                                     "centroids": km_raw.cluster_centers_, "species_of_cluster": species_of,
                                     "pca_mean": pca.mean_, "pca_components": pca.components_})
    run.save_arrays("predictions.npz", y_true=y, pca=P, **labels)

    # verification: PCA scatter, pair plot, misassigned flowers, confusion matrix
    lab = km_raw.labels_
    wrong = np.array([species_of[int(c)] for c in lab]) != y
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for s, name in enumerate(classes):
        for c in range(cfg.k):
            sel = (y == s) & (lab == c)
            ax.scatter(P[sel, 0], P[sel, 1], c=COLORS[c % 5], marker=MARKERS[s % 5], s=30, alpha=0.8)
    ax.scatter(P[wrong, 0], P[wrong, 1], s=150, facecolors="none", edgecolors="red", lw=1.5,
               label=f"misassigned ({wrong.sum()})")
    ax.scatter(C[:, 0], C[:, 1], c="k", marker="X", s=200, label="centroids")
    for s, name in enumerate(classes):
        ax.scatter([], [], c="grey", marker=MARKERS[s % 5], label=f"true: {name}")
    for c in range(cfg.k):
        ax.scatter([], [], c=COLORS[c % 5], marker="o", label=f"cluster {c} -> {classes[species_of[c]]}")
    ax.set(xlabel=f"PC1 ({pca.explained_variance_ratio_[0]:.0%} of variance)",
           ylabel=f"PC2 ({pca.explained_variance_ratio_[1]:.0%})", title="K-means (raw features, k=3) in PCA space")
    ax.legend(fontsize=7, loc="best")
    run.save_figure(fig, "pca_clusters.png")
    fig, axes = plt.subplots(4, 4, figsize=(11, 11))
    for i in range(4):
        for j in range(4):
            ax = axes[i, j]
            if i == j:
                for c in range(cfg.k):
                    ax.hist(X[lab == c, i], bins=15, alpha=0.6, color=COLORS[c % 5])
            else:
                ax.scatter(X[:, j], X[:, i], c=COLORS[lab % 5], s=10)
                ax.scatter(X[wrong, j], X[wrong, i], s=40, facecolors="none", edgecolors="red", lw=1)
                ax.scatter(km_raw.cluster_centers_[:, j], km_raw.cluster_centers_[:, i], c="k", marker="X", s=60)
            if i == 3:
                ax.set_xlabel(feats[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(feats[i], fontsize=8)
    fig.suptitle("pair plot coloured by K-means cluster (red rings: misassigned flowers)", y=0.92)
    fig.subplots_adjust(hspace=0.25, wspace=0.3)  # (tight_layout on 16 panels costs seconds)
    run.save_figure(fig, "pairplot.png")
    mapped = np.array([species_of[int(c)] for c in lab])
    run.save_figure(plots.confusion_matrix(skm.confusion_matrix(y, mapped), classes, normalize=False,
                                           title="species vs matched K-means cluster"), "confusion.png")

    intro = (f"K-means on the {len(y)} Iris flowers ({', '.join(feats)}); the species are used only to evaluate. "
             f"K-means keeps the best of {n_init} restarts (seed {cfg.seed}).")
    sections = [
        ("Methods at k = 3", report.md_table(rows) + "\n\nARI/AMI: agreement with the species corrected for chance; "
         "accuracy after the best one-to-one matching of clusters to species (Hungarian algorithm); silhouette "
         "computed on the raw features for every method. The Gaussian mixture can fit elongated, differently "
         "sized clusters, which is what separates versicolor from virginica; standardising gives the sepal "
         "width (which hardly separates the species) as much weight as the petal measurements."),
        ("Choosing k", report.img("choose_k.png") + f"\n\nThe silhouette is highest at k = {best_k['raw']} "
         f"(raw) and k = {best_k['std']} (standardised): setosa stands apart, versicolor and virginica overlap. "
         f"k = {cfg.k} is the known number of species, not a choice read off these curves."),
        ("Clusters", f"{report.img('pca_clusters.png')}\n\n{report.img('pairplot.png')}\n\n{report.img('confusion.png')}"
         f"\n\n{int(wrong.sum())} flowers are in a cluster matched to another species (red rings)."),
    ]
    return metrics, report.render("Iris: K-means clustering", intro, cfg, metrics, sections)


def add_predict_args(parser) -> None:
    tabular.add_row_args(parser, "'[5.1, 3.5, 1.4, 0.2]' or '{\"sepal length\": 5.1, ...}'")


def load_clusters(run_dir) -> tuple[dict, np.ndarray, np.ndarray]:
    """(model.json, the 150 flowers in the run's PCA plane, their K-means clusters) of an iris run."""
    m = tabular.load_model(run_dir, "model.json", NAME)
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as p:
        return m, p["pca"], p["kmeans_raw"]


def assign(m: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centroid of each row, distances to every centroid in cm)."""
    dist = np.linalg.norm(X[:, None, :] - np.array(m["centroids"])[None], axis=2)
    return dist.argmin(1), dist


def pca_figure(m: dict, P: np.ndarray, lab: np.ndarray, X: np.ndarray, clusters: np.ndarray):
    """The new flowers among the 150 clustered ones, in the run's PCA plane."""
    cent, classes = np.array(m["centroids"]), m["classes"]
    proj = lambda Z: (Z - np.array(m["pca_mean"])) @ np.array(m["pca_components"]).T  # noqa: E731
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(P[:, 0], P[:, 1], c=COLORS[lab % 5], s=15, alpha=0.4)
    C, Q = proj(cent), proj(X)
    ax.scatter(C[:, 0], C[:, 1], c="k", marker="X", s=150, label="centroids")
    ax.scatter(Q[:, 0], Q[:, 1], c=COLORS[clusters % 5], marker="*", s=350, edgecolors="k", label="new flower(s)")
    for c in range(len(cent)):
        ax.scatter([], [], c=COLORS[c % 5], label=f"cluster {c}: {classes[m['species_of_cluster'][str(c)]]}")
    ax.set(xlabel="PC1", ylabel="PC2", title="prediction in the PCA plane of the training flowers")
    ax.legend(fontsize=8)
    return fig


def predict(args) -> int:
    from ...toolkit.runs import Run
    from ...toolkit.weights import open_run
    run_dir, _ = open_run(NAME, args.run, args.out)
    m, P, lab = load_clusters(run_dir)
    X, stem = tabular.rows_from_args(args.row, args.csv, m["features"])
    X = X.to_numpy()
    clusters, dist = assign(m, X)
    classes, n = m["classes"], len(m["centroids"])
    for i, (c, d) in enumerate(zip(clusters, dist), 1):
        sp = classes[m["species_of_cluster"][str(c)]]
        print(f"row {i}: cluster {c} -> {sp} (distance to its centroid {d[c]:.2f} cm; to the others "
              + ", ".join(f"{d[j]:.2f}" for j in range(n) if j != c) + ")")
    path = Run(run_dir).save_figure(pca_figure(m, P, lab, X, clusters), tabular.prediction_figure_path(run_dir, stem))
    print(f"plot: {path}")
    return 0


TASK = Task(
    name=NAME, exercise="Iris clustering, visualised", dataset="iris",
    model="K-means (with a Gaussian mixture for comparison)",
    headline=Headline("ari", "adjusted Rand index (K-means, k=3)"),
    reference=Reference("K-means k=3 ARI 0.730", 0.730, "scikit-learn K-means on the raw Iris features"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=iris_page(),
    tune_note="clustering has no validation split; k is studied by the elbow and silhouette curves")
