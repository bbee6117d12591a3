"""minGRU: a gated recurrent layer whose gates read only the input, so it trains in parallel over time.

    z_t = sigmoid(W_z x_t)                  (update gate)
    h~_t = W_h x_t                          (candidate state)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t  (h_0 = 0)

Feng et al. 2024, "Were RNNs All We Needed?" (arXiv:2410.01201). The state is still carried from
step to step (it is a recurrent network: the output at t depends on every earlier input through
h_{t-1}), but since neither gate reads h_{t-1}, the recurrence is linear in h,
h_t = a_t * h_{t-1} + b_t, and all T steps are found with cumulative sums instead of T dependent
matrix products (on the 2-core CPU, IMDB's 2x128 bidirectional model trains a step 1.4x faster
with it than with LSTM cells).

The scan (`linear_scan`) works in chunks of `CHUNK` steps: inside a chunk,
h_t = P_t * sum_{s<=t} b_s / P_s with P_t the running product of a (computed as exp of a cumulative
sum of log a); the chunks are then joined by carrying each chunk's last state into the next. The
retain factor a = 1 - z is kept >= exp(LOG_A_MIN) = 0.0067 per step so that 1 / P stays inside
float32 within a chunk (exp(16 * 5) < 3.4e38); it is computed in float32 whatever the autocast.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

CHUNK = 16        # steps per chunk of the scan
LOG_A_MIN = -5.0  # log of the smallest retain factor per step (see the module docstring)


def linear_scan(log_a: torch.Tensor, b: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """h_t = exp(log_a_t) * h_{t-1} + b_t over dim 1 of (B, T, H) tensors, h_0 = 0; log_a >= LOG_A_MIN."""
    n_batch, steps, width = b.shape
    pad = (-steps) % chunk
    if pad:
        log_a, b = F.pad(log_a, (0, 0, 0, pad)), F.pad(b, (0, 0, 0, pad))
    n = (steps + pad) // chunk
    cum = log_a.reshape(n_batch, n, chunk, width).cumsum(2)      # log P_t within each chunk
    local = cum.exp() * (b.reshape(n_batch, n, chunk, width) * (-cum).exp()).cumsum(2)  # states from h = 0
    decay, last = cum[:, :, -1].exp(), local[:, :, -1]          # each chunk's P over all its steps, its end state
    carry = [torch.zeros_like(last[:, 0])]                       # the state entering chunk 0, 1, ...
    for c in range(n - 1):
        carry.append(decay[:, c] * carry[-1] + last[:, c])
    h = local + cum.exp() * torch.stack(carry, 1)[:, :, None]
    return h.reshape(n_batch, n * chunk, width)[:, :steps]


class MinGRU(nn.Module):
    """One minGRU layer over (B, T, input_size) -> (B, T, hidden_size), batch first like nn.GRU's output."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.proj = nn.Linear(input_size, 2 * hidden_size)  # gate and candidate in one product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, candidate = self.proj(x).float().chunk(2, dim=-1)
        with torch.autocast(x.device.type, enabled=False):
            log_a = (-F.softplus(gate)).clamp(min=LOG_A_MIN)   # log(1 - z), z = sigmoid(gate)
            return linear_scan(log_a, torch.sigmoid(gate) * candidate)
