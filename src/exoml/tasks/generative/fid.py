"""Fréchet distance between two sets of feature vectors: FID when the features come from a
trained classifier's penultimate layer (Heusel et al. 2017 use Inception-v3; for MNIST the
`gan` task uses the project's own MNIST CNN, so the numbers are only comparable between runs
that use the same judge network and the same sample sizes: FID is biased upwards for small n).

    FID = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

The trace of the matrix square root is computed as the sum of the square roots of the
eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric positive semi-definite, so `eigh` is exact and
never produces the small imaginary parts that `scipy.linalg.sqrtm(S_a @ S_b)` can). The two
are the same number: S_a S_b is similar to S_a^(1/2) S_b S_a^(1/2).
"""
from __future__ import annotations

import numpy as np
import torch

from ...toolkit import train


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance matrix (unbiased, float64) of features shaped (N, D)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least two feature vectors shaped (N, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """Fréchet distance between the Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b)."""
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * tr_covmean, 0.0))


def fid(features_a, features_b) -> float:
    """FID between two feature sets (N_a, D) and (N_b, D)."""
    return frechet_distance(*statistics(features_a), *statistics(features_b))


def inception_score(probs, splits: int = 1) -> float:
    """exp(E_x KL(p(y|x) || p(y))), p(y) the mean of the per-sample class probabilities (Salimans
    et al. 2016, here with the MNIST judge instead of Inception-v3). It is high (at most the number
    of classes) when each sample is classified confidently and the classes are used evenly. With
    `splits` > 1: the mean over that many equal parts, as the original reports it."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits:
        raise ValueError(f"need class probabilities shaped (N, C) with N >= {splits}, got {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None)))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores))


@torch.no_grad()
def judge_outputs(model, images: np.ndarray, batch_size: int = 1000,
                  precision: str = "cuda") -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features (N, D), class probabilities (N, C)) of uint8 images (N, 28, 28) for a
    classifier whose forward takes floats in [0, 1] shaped (N, 1, 28, 28) and that has `.features`
    (and, optionally, `.head` with forward(x) == head(features(x))). precision: as
    toolkit.train.autocast's (default: bf16 on CUDA only)."""
    model.eval()
    device = next(model.parameters()).device
    feats, probs = [], []
    for idx in train.batches(len(images), batch_size):
        xb = torch.from_numpy(images[idx.numpy()]).to(device).float().div(255).unsqueeze(1)
        with train.autocast(device, precision):
            f = model.features(xb)
            # the mnist task's network is forward(x) = head(features(x)): one pass instead of two
            logits = model.head(f) if hasattr(model, "head") else model(xb)
        feats.append(f.float().cpu())
        probs.append(logits.float().softmax(-1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()
