"""Black-box meta-learner: stacked LSTMs read (input, label) pairs (Santoro et al. 2016, in the form
of the Stanford CS330 homework 1 "MANN": an LSTM controller without external memory)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mtl_cli.models.meta.base import MetaLearner, embed_points, make_encoder
from mtl_cli.models.meta.support_order import shuffle_support


class MANN(MetaLearner):
    """LSTM meta-learner (Santoro et al. 2016; CS330 HW1 form): each point is its encoded input
    concatenated with its label (one-hot; (y, 1) for regression), query labels are zeros.

    Sequence order: the support in the sampler's order (K rounds of N), then ONE query. Every query
    is read in parallel from the LSTM state after the support, which equals running B*Q sequences
    "support + query_j": no query sees another query. `shuffle_support` presents each training
    episode's support in a random order, as Santoro et al. 2016 do (`support_order`); the default
    keeps the sampler's order, the CS330 HW1 layout: with a random order the LSTM stayed at chance
    for 600 steps on Hershey 5-way 1-shot where the sampler's order reached 57% (docs/meta.md).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module] | None = None,
        hidden_size: int = 128,
        num_layers: int = 2,
        encoder: str = "flatten",
        shuffle_support: bool = False,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        self.shuffle_support = bool(shuffle_support)
        if hidden_size < 1:
            raise ValueError(f"hidden_size: {hidden_size} is below the minimum 1")
        if num_layers < 1:
            raise ValueError(f"num_layers: {num_layers} is below the minimum 1")
        self.encoder, features = make_encoder(encoder, self.input_shape, make_backbone)
        self.lstm = nn.LSTM(features + self.label_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, self.out_dim)

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Query predictions [B, Q, out_dim] from the LSTM state after reading the support."""
        self.check_episode(support_x, support_y, query_x)
        if self.training and self.shuffle_support:
            support_x, support_y = shuffle_support(support_x, support_y)
        b, s = support_y.shape[:2]
        q = query_x.shape[1]
        points = embed_points(self.encoder, torch.cat([support_x, query_x], dim=1))
        support_feat, query_feat = points.split([s, q], dim=1)
        labels = self.label_features(support_y)
        _, (h, c) = self.lstm(torch.cat([support_feat, labels], dim=-1))  # h, c: [L, B, H]
        query_in = torch.cat([query_feat, query_feat.new_zeros(b, q, self.label_size)], dim=-1)
        state = (h.repeat_interleave(q, dim=1), c.repeat_interleave(q, dim=1))  # [L, B*Q, H]
        out, _ = self.lstm(query_in.reshape(b * q, 1, -1), state)
        return self.head(out[:, 0]).view(b, q, self.out_dim)
