"""SNAIL: temporal convolutions + causal soft attention over (input, label) sequences
(Mishra et al. 2018, "A Simple Neural Attentive Meta-Learner")."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.meta.base import MetaLearner, embed_points, make_encoder
from mtl_cli.models.meta.support_order import shuffle_support

# Every layer maps (support [B, S, C], query [B, Q, C]) to the same pair with more channels.
# The support is causal in itself; each query sits at position S (right after the support) in its
# own sequence, so it sees the whole support and itself but never another query.


class DenseBlock(nn.Module):
    """Mishra et al. 2018 DenseBlock: causal conv (kernel 2, dilation d) with gated activation
    tanh(xf) * sigmoid(xg), concatenated to its input."""

    def __init__(self, in_channels: int, dilation: int, filters: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.tap_now = nn.Linear(in_channels, 2 * filters)  # kernel tap at t (carries the bias)
        self.tap_past = nn.Linear(in_channels, 2 * filters, bias=False)  # kernel tap at t - d
        self.out_channels = in_channels + filters

    def forward(
        self, support: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s, d = support.shape[1], self.dilation
        past_support = F.pad(support, (0, 0, d, 0))[:, :s]  # x[t - d], zeros before the start
        past_query = support[:, s - d : s - d + 1] if d <= s else torch.zeros_like(support[:, :1])
        return (
            self._gate(support, self.tap_now(support) + self.tap_past(past_support)),
            self._gate(query, self.tap_now(query) + self.tap_past(past_query)),
        )

    @staticmethod
    def _gate(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        xf, xg = z.chunk(2, dim=-1)
        return torch.cat([x, torch.tanh(xf) * torch.sigmoid(xg)], dim=-1)


class TCBlock(nn.Module):
    """Mishra et al. 2018 TCBlock: DenseBlocks with dilations 2, 4, ..., 2^blocks (the paper uses
    blocks = ceil(log2 T) for sequences of length T)."""

    def __init__(self, in_channels: int, blocks: int, filters: int) -> None:
        super().__init__()
        layers = []
        for i in range(1, blocks + 1):
            layers.append(DenseBlock(in_channels, 2**i, filters))
            in_channels = layers[-1].out_channels
        self.blocks = nn.ModuleList(layers)
        self.out_channels = in_channels

    def forward(
        self, support: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            support, query = block(support, query)
        return support, query


class AttentionBlock(nn.Module):
    """Mishra et al. 2018 AttentionBlock: single-head causal soft attention (Vaswani et al. 2017),
    the read values concatenated to the input."""

    def __init__(self, in_channels: int, key_size: int, value_size: int) -> None:
        super().__init__()
        self.key_size, self.value_size = key_size, value_size
        self.project = nn.Linear(in_channels, 2 * key_size + value_size)
        self.out_channels = in_channels + value_size

    def forward(
        self, support: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = [self.key_size, self.key_size, self.value_size]
        sq, sk, sv = self.project(support).split(sizes, dim=-1)
        qq, qk, qv = self.project(query).split(sizes, dim=-1)
        scale = 1.0 / math.sqrt(self.key_size)
        s = support.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool, device=support.device).triu(1)
        logits = (sq @ sk.transpose(1, 2) * scale).masked_fill(causal, float("-inf"))
        support_read = logits.softmax(dim=-1) @ sv
        # each query attends to the whole support and to itself
        query_logits = torch.cat([qq @ sk.transpose(1, 2), (qq * qk).sum(-1, keepdim=True)], dim=-1)
        weights = (query_logits * scale).softmax(dim=-1)
        query_read = weights[..., :s] @ sv + weights[..., s:] * qv
        return torch.cat([support, support_read], dim=-1), torch.cat([query, query_read], dim=-1)


class SNAIL(MetaLearner):
    """SNAIL (Mishra et al. 2018): encoded input + label (one-hot; (y, 1) for regression; zeros for
    the query) through Attention, [TCBlock, Attention] x (len(key_sizes) - 1), then a linear map.

    Defaults are the paper's few-shot architecture: Attention(64, 32), TC(128), Attention(256, 128),
    TC(128), Attention(512, 256), with its ceil(log2(N*K + 1)) = 3 dense blocks per TC for 5-way
    1-shot (5 for 5w5s and 20w1s, 7 for 20w5s). Each query is processed as the last element of its
    own sequence (support then that query), computed for all queries at once. `shuffle_support`
    presents each training episode's support in a random order (`support_order`), as the paper's
    sequences are; the config default is true: in the sampler's fixed order (K rounds of labels
    0..N-1) the causal convolutions give the query the labels at fixed positions, a shortcut on
    which two of three seeds stalled at 62% on Hershey 5-way 1-shot (docs/meta.md). The
    constructor's false keeps a bare module deterministic in training mode.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module] | None = None,
        key_sizes: Sequence[int] = (64, 256, 512),
        value_sizes: Sequence[int] = (32, 128, 256),
        filters: int = 128,
        dense_blocks: int = 3,
        encoder: str = "backbone",
        shuffle_support: bool = False,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        self.shuffle_support = bool(shuffle_support)
        key_sizes, value_sizes = list(key_sizes), list(value_sizes)
        if not key_sizes or len(key_sizes) != len(value_sizes):
            raise ValueError(
                f"key_sizes/value_sizes: need equal, non-empty lengths; "
                f"got {len(key_sizes)} and {len(value_sizes)}"
            )
        for key, values in (("key_sizes", key_sizes), ("value_sizes", value_sizes)):
            if min(values) < 1:
                raise ValueError(f"{key}: sizes must be >= 1; got {values}")
        if filters < 1:
            raise ValueError(f"filters: {filters} is below the minimum 1")
        if dense_blocks < 1:
            raise ValueError(f"dense_blocks: {dense_blocks} is below the minimum 1")
        self.encoder, features = make_encoder(encoder, self.input_shape, make_backbone)
        channels = features + self.label_size
        layers: list[nn.Module] = []
        for i, (key_size, value_size) in enumerate(zip(key_sizes, value_sizes, strict=True)):
            if i > 0:
                layers.append(TCBlock(channels, dense_blocks, filters))
                channels = layers[-1].out_channels
            layers.append(AttentionBlock(channels, key_size, value_size))
            channels = layers[-1].out_channels
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(channels, self.out_dim)

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Query predictions [B, Q, out_dim]."""
        self.check_episode(support_x, support_y, query_x)
        if self.training and self.shuffle_support:
            support_x, support_y = shuffle_support(support_x, support_y)
        b, s = support_y.shape[:2]
        q = query_x.shape[1]
        points = embed_points(self.encoder, torch.cat([support_x, query_x], dim=1))
        support_feat, query_feat = points.split([s, q], dim=1)
        support = torch.cat([support_feat, self.label_features(support_y)], dim=-1)
        query = torch.cat([query_feat, query_feat.new_zeros(b, q, self.label_size)], dim=-1)
        for layer in self.layers:
            support, query = layer(support, query)
        return self.head(query)
