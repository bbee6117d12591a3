"""Several trained classifiers of one kind used as one: the ensemble's prediction is the mean of
their class probabilities (a plain average, as in the MNIST CNN-ensemble papers)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Ensemble(nn.Module):
    """forward(x) returns log(mean of the members' softmax probabilities), so everything that reads
    logits (softmax, argmax, cross-entropy, test-time augmentation) reads the ensemble as it would one
    network. `features(x)` concatenates the members' features (every member must have `features`)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([F.log_softmax(m(x).float(), 1) for m in self.members])
        return torch.logsumexp(logp, 0) - math.log(len(self.members))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.features(x) for m in self.members], 1)
