"""Matching networks: attention over the labelled support (Vinyals et al. 2016)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.meta.base import MetaLearner, embed_points
from mtl_cli.schemas import meta_model as schema


class MatchingNetwork(MetaLearner):
    """Matching networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra 2016, "Matching
    Networks for One Shot Learning", NeurIPS).

    Support and queries are embedded by the backbone in one pass (as ProtoNet). The attention of
    query x^ on support point x_i is a(x^, x_i) = softmax_i(scale * cos(f(x^), g(x_i))) and the
    prediction is P(y | x^, S) = sum_i a(x^, x_i) y_i with y_i one-hot (paper eq. 1-2).

    `forward` returns log P(y | x^, S) [B, Q, ways] (log-probabilities, clamped at the smallest
    positive float so an empty class stays finite). Since these already sum to one in probability
    space, log_softmax leaves them unchanged, so the base class's cross-entropy `loss` is exactly
    the paper's objective, -log P(y | x^, S), and argmax is the paper's prediction.

    Options: `cosine_scale` multiplies the cosine similarities before the softmax; the paper uses
    the plain cosine (scale 1, the default); a larger scale sharpens the attention (as the
    temperature of later cosine classifiers). `full_context_embeddings` (paper appendix): g is a
    bidirectional LSTM over the support embeddings, g(x_i) = h_fwd_i + h_bwd_i + g'(x_i), and f is
    an attention LSTM run for `fce_steps` steps over each query: h^_k, c_k = LSTM(f'(x^),
    [h_{k-1}, r_{k-1}], c_{k-1}); h_k = h^_k + f'(x^); r_{k-1} = sum_i softmax_i(h_{k-1} . g(x_i))
    g(x_i); f(x^, S) = h_K with K = `fce_steps` and h_0 = 0. The default K is one step (I found
    no K stated for the paper's runs).

    Deviations: the LSTM state [h_{k-1}, r_{k-1}] is the sum h_{k-1} + r_{k-1} (one hidden size,
    the embedding width, so h^_k + f'(x^) is defined, as in common reimplementations) instead of a
    concatenation; the support order of the episode is the bidirectional LSTM's sequence order.
    """

    kinds: ClassVar[tuple[str, ...]] = schema.MatchingNetwork.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
        cosine_scale: float = 1.0,
        full_context_embeddings: bool = False,
        fce_steps: int = 1,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        if not cosine_scale > 0:
            raise ValueError(f"cosine_scale: {cosine_scale} must be greater than 0")
        if int(fce_steps) < 1:
            raise ValueError(f"fce_steps: {fce_steps} is below the minimum 1")
        self.cosine_scale = float(cosine_scale)
        self.full_context_embeddings = bool(full_context_embeddings)
        self.fce_steps = int(fce_steps)
        self.backbone = make_backbone()
        if self.full_context_embeddings:
            width = int(self.backbone.out_features)
            self.support_lstm = nn.LSTM(width, width, batch_first=True, bidirectional=True)
            self.query_lstm = nn.LSTMCell(width, width)

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Log-probabilities [B, Q, ways]: log of the attention-weighted one-hot support labels."""
        self.check_episode(support_x, support_y, query_x)
        s = support_x.shape[1]
        points = embed_points(self.backbone, torch.cat([support_x, query_x], dim=1))
        support, query = points[:, :s], points[:, s:]
        if self.full_context_embeddings:
            support = self.embed_support(support)
            query = self.embed_queries(query, support)
        return self.log_probabilities(support, support_y, query)

    def log_probabilities(
        self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        """log sum_i softmax_i(scale * cos(query, support_i)) onehot(y_i): [B, Q, ways]."""
        cosine = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(1, 2)
        attention = torch.softmax(self.cosine_scale * cosine, dim=-1)  # [B, Q, S]
        probabilities = attention @ self.label_features(support_y).to(attention.dtype)
        return probabilities.clamp(min=torch.finfo(probabilities.dtype).tiny).log()

    def embed_support(self, support: torch.Tensor) -> torch.Tensor:
        """FCE g: g'(x_i) plus the forward and backward LSTM states over the support [B, S, F]."""
        states, _ = self.support_lstm(support)
        forward, backward = states.chunk(2, dim=-1)
        return support + forward + backward

    def embed_queries(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """FCE f: `fce_steps` attention-LSTM steps per query, reading the embedded support."""
        b, q, width = query.shape
        flat = query.reshape(b * q, width)
        h = torch.zeros_like(flat)
        c = torch.zeros_like(flat)
        for _ in range(self.fce_steps):
            # r_{k-1} = sum_i softmax_i(h_{k-1} . g(x_i)) g(x_i), read before step k (h_0 = 0)
            scores = h.view(b, q, width) @ support.transpose(1, 2)  # [B, Q, S]
            readout = (torch.softmax(scores, dim=-1) @ support).reshape(b * q, width)
            h_hat, c = self.query_lstm(flat, (h + readout, c))
            h = h_hat + flat
        return h.view(b, q, width)
