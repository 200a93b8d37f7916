"""ProtoNet's squared distances stay accurate in float32 when the embeddings share a large offset.

The expansion ||a||^2 + ||b||^2 - 2 a.b cancels catastrophically there: with F = 64 and every
coordinate offset by 1000 each term is about 6.4e7, so float32 rounding (~4 per term) swamps
distances of about 128 whose spread over one query's prototypes (the range of the logits
ProtoNet's softmax sees) is about 25.
"""

from __future__ import annotations

import pytest
import torch

from mtl_cli.models.meta.protonet import squared_distances

B, M, N, F = 4, 30, 5, 64
#: float32 rounds each input coordinate to ~1e-7 relative; 1e-3 of the logit spread is far below
#: what changes a softmax and far above what a stable float32 formula loses
RELATIVE_TOLERANCE = 1e-3


def embeddings(offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(B, M, F, generator=generator) + offset
    b = torch.randn(B, N, F, generator=generator) + offset
    return a, b  # float32


def reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Float64, by difference, on the same float32 inputs."""
    return ((a.double()[:, :, None] - b.double()[:, None]) ** 2).sum(-1)


def spread(exact: torch.Tensor) -> float:
    """Mean over queries of the range of their distances to the prototypes (the logit spread)."""
    return float((exact.amax(-1) - exact.amin(-1)).mean())


def expanded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The textbook expansion (the formula the module used before)."""
    sq = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(1) - 2 * a @ b.transpose(1, 2)
    return sq.clamp(min=0.0)


@pytest.mark.parametrize("offset", [0.0, 100.0, 1000.0])
def test_float32_distances_match_float64_reference(offset):
    a, b = embeddings(offset)
    exact = reference(a, b)
    bound = RELATIVE_TOLERANCE * spread(exact)
    result = squared_distances(a, b)
    assert result.dtype == torch.float32 and result.shape == (B, M, N)
    error = float((result.double() - exact).abs().max())
    assert error < bound, f"max error {error:.3g} >= bound {bound:.3g} (offset {offset})"
    if offset:  # the bound does tell the formulas apart: the expansion breaks it
        assert float((expanded(a, b).double() - exact).abs().max()) > bound


def test_a_point_is_at_distance_zero_from_itself_despite_the_offset():
    _, b = embeddings(1000.0)
    diagonal = squared_distances(b, b).diagonal(dim1=1, dim2=2)
    assert float(diagonal.abs().max()) < RELATIVE_TOLERANCE * spread(reference(b, b))
