"""In-context learning with a transformer over (input, label) tokens (Garg, Tsipras, Liang &
Valiant 2022, "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes")."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from mtl_cli.models.meta.base import MetaLearner, embed_points
from mtl_cli.models.meta.point_encoder import point_encoder
from mtl_cli.schemas import meta_model as schema
from mtl_cli.schemas.checks import check_settings


def support_query_mask(support: int, queries: int, device: torch.device) -> torch.Tensor:
    """Boolean attention mask [S + Q, S + Q], True = may NOT attend: support tokens attend to the
    support only; each query attends to the support and to itself, never to another query."""
    n = support + queries
    blocked = torch.zeros(n, n, dtype=torch.bool, device=device)
    blocked[:support, support:] = True
    blocked[support:, support:] = ~torch.eye(queries, dtype=torch.bool, device=device)
    return blocked


class InContextTransformer(MetaLearner):
    """Transformer in-context learner (Garg et al. 2022, primary: a GPT-2 trained on prompts of
    (x, f(x)) pairs; also Kirsch, Harrison, Sohl-Dickstein, Ritter & Metz 2022, "General-Purpose
    In-Context Learning by Meta-Learning Transformers", for classification in context).

    Tokens: embed(x_i) + embed(y_i) for each support pair and embed(x_q) + a learned "unknown label"
    vector for each query; embed(x) is a linear map of the encoded input (`encoder: auto` = the
    backbone for images, the raw input for vectors), embed(y) a linear map of y (regression) or
    a learned vector per class (classification). A stack of `layers` torch TransformerEncoderLayers
    (GELU, `norm_first` pre-norm with a final LayerNorm, as GPT-2) runs under a mask: support tokens
    attend to the support only, each query to the support and itself, so no query sees another
    query. A linear read-out of each query token gives the logits or the value (MSE, like the
    paper's squared-error objective).

    Defaults are Garg et al.'s standard model (their conf/models/standard.yaml and GPT-2 config):
    d_model 256, 8 heads, 12 layers, feed-forward 4 * 256 = 1024, dropout 0, pre-norm. Deviations:
    one token per (x, y) pair instead of interleaved x and y tokens (Kirsch et al. also put the
    pair in one token); the support-set mask above instead of a causal mask, and no positional
    encoding, so predictions do not depend on the order of the support.
    """

    kinds: ClassVar[tuple[str, ...]] = schema.InContextTransformer.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module] | None = None,
        d_model: int = schema.InContextTransformer.d_model,
        heads: int = schema.InContextTransformer.heads,
        layers: int = schema.InContextTransformer.layers,
        feedforward: int = schema.InContextTransformer.feedforward,
        dropout: float = schema.InContextTransformer.dropout,
        norm_first: bool = schema.InContextTransformer.norm_first,
        encoder: str = schema.InContextTransformer.encoder,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        check_settings(
            schema.InContextTransformer,
            d_model=d_model,
            heads=heads,
            layers=layers,
            feedforward=feedforward,
            dropout=dropout,
            encoder=encoder,
        )
        if d_model % heads:
            raise ValueError(f"heads: {heads} does not divide d_model {d_model}")
        self.points, features = point_encoder(encoder, self.input_shape, make_backbone)
        self.embed_x = nn.Linear(features, d_model)
        if kind == "classification":
            self.embed_y: nn.Module = nn.Embedding(self.ways, d_model)
        else:
            self.embed_y = nn.Linear(1, d_model)
        self.unknown = nn.Parameter(torch.randn(d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            feedforward,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=bool(norm_first),
        )
        final_norm = nn.LayerNorm(d_model) if norm_first else None
        self.transformer = nn.TransformerEncoder(
            layer, layers, norm=final_norm, enable_nested_tensor=False
        )
        self.head = nn.Linear(d_model, self.out_dim)

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Query predictions [B, Q, out_dim]."""
        self.check_episode(support_x, support_y, query_x)
        s, q = support_x.shape[1], query_x.shape[1]
        points = self.embed_x(embed_points(self.points, torch.cat([support_x, query_x], dim=1)))
        support = points[:, :s] + self.embed_y(support_y)
        query = points[:, s:] + self.unknown
        mask = support_query_mask(s, q, points.device)
        tokens = self.transformer(torch.cat([support, query], dim=1), mask=mask)
        return self.head(tokens[:, s:])
