"""Random support order for sequence learners (MANN, SNAIL): the sampler lays the support out as K
rounds of the N labels in the order 0..N-1, so without a shuffle a label is a function of its
position; Santoro et al. (2016) and Mishra et al. (2018) present the labelled examples in random
order, so a sequence learner must read the labels to bind them."""

from __future__ import annotations

import torch


def shuffle_support(
    support_x: torch.Tensor, support_y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The support of each episode in its own random order (x and y permuted together; draws from
    torch's global generator, which a run seeds and checkpoints)."""
    b, s = support_y.shape[:2]
    order = torch.rand(b, s, device=support_y.device).argsort(dim=1)
    rows = torch.arange(b, device=support_y.device)[:, None]
    return support_x[rows, order], support_y[rows, order]
