"""Conditional Neural Processes (Garnelo et al. 2018, "Conditional Neural Processes", ICML)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.meta.base import MetaLearner, embed_points
from mtl_cli.models.meta.point_encoder import point_encoder
from mtl_cli.schemas import meta_model as schema
from mtl_cli.schemas.checks import check_settings


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers sizes[0] -> sizes[1] -> ... with ReLU between them, none after the last (as
    the encoder and decoder of the CNP notebook)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [nn.Linear(a, b)] if i == len(sizes) - 2 else [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class CNP(MetaLearner):
    """Conditional Neural Process (Garnelo, Rosenbaum, Maddison, Ramalho, Saxton, Shanahan, Teh,
    Rezende & Eslami 2018, "Conditional Neural Processes", ICML).

    Encoder h: r_i = h([x_i, y_i]) for every support pair (x_i through the backbone for images
    and raw for vectors with `encoder: auto`; y_i raw for regression, one-hot for classification),
    an MLP of `encoder_sizes` (ReLU between layers, none after the last; the last size is r's).
    Aggregation: the mean, so r is invariant to the order of the support. Decoder g: an MLP of
    `decoder_sizes` hidden layers plus an output layer on [x_query, r].

    Regression (the paper's §4.1 and the official notebook deepmind/neural-processes
    conditional_neural_process.ipynb): the output layer gives (mu, s); sigma = min_sigma +
    (1 - min_sigma) * softplus(s) (= the notebook's 0.1 + 0.9 * softplus with min_sigma 0.1); the
    loss is the Gaussian negative log-likelihood of the query targets, averaged over points.
    Defaults are the notebook's: encoder [128, 128, 128, 128], decoder [128, 128] (+ the output
    layer of 2: its [128, 128, 2]).

    Output: in training mode `forward` gives (mu, sigma) stacked [B, Q, 2], what `loss` needs; in
    eval mode it gives the predictive mean mu [B, Q, 1], the point prediction the meta family's
    evaluation scores by MSE (the interface's regression output).

    Classification (§4.3, Omniglot; Fig. 1c): the representations are aggregated per class,
    r_c = mean of r_i over the support points of class c (a class without support gets zeros), and
    the decoder maps [x_query, r_1, ..., r_N] (classes in label order) to N logits, trained by
    cross-entropy. This wiring of the decoder (concatenated class representations) and its sizes
    (the same MLP options, output layer `ways`) are this implementation's choice, not the paper's
    stated architecture.
    """

    kinds: ClassVar[tuple[str, ...]] = schema.CNP.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module] | None = None,
        encoder_sizes: Sequence[int] = (128, 128, 128, 128),
        decoder_sizes: Sequence[int] = (128, 128),
        aggregation: str = schema.CNP.aggregation,
        min_sigma: float = schema.CNP.min_sigma,
        encoder: str = schema.CNP.encoder,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        check_settings(schema.CNP, aggregation=aggregation, min_sigma=min_sigma, encoder=encoder)
        encoder_sizes = [int(s) for s in encoder_sizes]
        decoder_sizes = [int(s) for s in decoder_sizes]
        if not encoder_sizes or min(encoder_sizes) < 1:
            raise ValueError(f"encoder_sizes: need one or more sizes >= 1; got {encoder_sizes}")
        if decoder_sizes and min(decoder_sizes) < 1:
            raise ValueError(f"decoder_sizes: sizes must be >= 1; got {decoder_sizes}")
        self.min_sigma = float(min_sigma)
        self.points, features = point_encoder(encoder, self.input_shape, make_backbone)
        label_width = self.ways if kind == "classification" else 1
        self.encoder = mlp([features + label_width, *encoder_sizes])
        classes = self.ways if kind == "classification" else 1
        out = self.ways if kind == "classification" else 2
        self.decoder = mlp([features + classes * encoder_sizes[-1], *decoder_sizes, out])

    def representation(self, support_feat: torch.Tensor, support_y: torch.Tensor) -> torch.Tensor:
        """r [B, R] (regression: mean of r_i) or [B, N * R] (classification: class means)."""
        if self.kind == "regression":
            return self.encoder(torch.cat([support_feat, support_y], dim=-1)).mean(dim=1)
        members = F.one_hot(support_y, self.ways).to(support_feat.dtype)  # [B, S, N]
        r_i = self.encoder(torch.cat([support_feat, members], dim=-1))  # [B, S, R]
        counts = members.sum(dim=1).clamp(min=1.0)  # [B, N]
        return (members.transpose(1, 2) @ r_i / counts[..., None]).flatten(1)

    def distribution(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """The decoder's output [B, Q, out]: (mu, sigma) for regression, logits for classes."""
        self.check_episode(support_x, support_y, query_x)
        s, q = support_x.shape[1], query_x.shape[1]
        points = embed_points(self.points, torch.cat([support_x, query_x], dim=1))
        support_feat, query_feat = points.split([s, q], dim=1)
        r = self.representation(support_feat, support_y)
        out = self.decoder(torch.cat([query_feat, r[:, None].expand(-1, q, -1)], dim=-1))
        if self.kind == "classification":
            return out
        mu, raw = out.split(1, dim=-1)
        return torch.cat([mu, self.min_sigma + (1 - self.min_sigma) * F.softplus(raw)], dim=-1)

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Logits [B, Q, ways]; regression: (mu, sigma) [B, Q, 2] in training, mu [B, Q, 1] in
        eval mode."""
        out = self.distribution(support_x, support_y, query_x)
        return out[..., :1] if self.kind == "regression" and not self.training else out

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, or the Gaussian negative log-likelihood of the targets (regression)."""
        if self.kind == "classification":
            return super().loss(prediction, target)
        if prediction.shape[-1] != 2:
            raise ValueError(
                f"prediction: CNP's Gaussian likelihood needs (mu, sigma) [B, Q, 2] (the "
                f"training-mode output); got {tuple(prediction.shape)}"
            )
        mu, sigma = prediction[..., :1], prediction[..., 1:]
        nll = 0.5 * ((target - mu) / sigma) ** 2 + sigma.log() + 0.5 * math.log(2 * math.pi)
        return nll.mean()
