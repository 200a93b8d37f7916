"""N-way K-shot episodes (support = D_i^tr, query = D_i^test) drawn from a class-indexed tensor.

Vinyals et al. 2016 (episodic training), with Santoro et al. 2016's rotation augmentation (each of
the 0/90/180/270 degree rotations of a class is a new class). Every draw is vectorised over the
meta-batch: no Python loop over episodes, classes or drawers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


def _concrete(device: torch.device | str) -> torch.device:
    """`device` with its index, as tensors report it ("cuda" -> "cuda:<current>", "mps" -> "mps:0")."""
    device = torch.device(device)
    if device.index is None and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    if device.index is None and device.type == "mps":
        return torch.device("mps", 0)
    return device


def to_device(
    tensors: Sequence[torch.Tensor], device: torch.device | str
) -> tuple[torch.Tensor, ...]:
    """`tensors` on `device`, with as few host-to-device copies as possible.

    Tensors already there are returned as they are (no copy). The others are packed into one flat
    buffer per dtype (and source device) and moved with one copy each; on CUDA the buffer is
    pinned and the copy is `non_blocking`, so it overlaps with the work already queued on the GPU.
    (Freeing the pinned buffer right after is safe: torch's caching host allocator records the
    copy's event and does not reuse the block before the copy has finished.)
    """
    device = _concrete(device)
    out: list[torch.Tensor | None] = [t if t.device == device else None for t in tensors]
    moving: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(tensors):
        if out[i] is None:
            moving.setdefault((t.dtype, t.device), []).append(i)
    for indices in moving.values():
        parts = [tensors[i] for i in indices]
        flat = (
            parts[0].reshape(-1) if len(parts) == 1 else torch.cat([t.reshape(-1) for t in parts])
        )
        pinned = device.type == "cuda" and flat.device.type == "cpu"
        moved = (flat.pin_memory() if pinned else flat).to(device, non_blocking=pinned)
        for i, piece in zip(indices, moved.split([t.numel() for t in parts]), strict=True):
            out[i] = piece.view(tensors[i].shape)
    return tuple(out)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Episode:
    """B episodes: support [B, S, ...] with labels, queries [B, Q, ...] with their targets.

    Classification: S = N*K, Q = N*Q', labels int64 in 0..N-1. Regression: float targets [B, *, 1].
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def to(self, device: torch.device | str) -> Episode:
        """The same episode with every tensor on `device` (one packed copy per dtype, pinned and
        non-blocking on CUDA; tensors already there are not copied): see `to_device`."""
        return Episode(*to_device(self.tensors(), device))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(support_x, support_y, query_x, query_y)."""
        return self.support_x, self.support_y, self.query_x, self.query_y


class EpisodeSampler:
    """N-way K-shot episodes over a class-indexed tensor images [C, D, ...] (class x drawer).

    Each episode draws `ways` distinct classes and, per class, `shots + queries` distinct drawers
    (without replacement). Labels 0..N-1 are assigned to the drawn classes in a random order per
    episode. The support comes in K rounds of N (position k*N + n holds label n, as in the CS330
    homework's K x N layout); the queries come in a random order per episode. With `rotations`
    (Santoro et al. 2016) there are 4*C classes: class c is base class c % C turned by
    90 * (c // C) degrees (torch.rot90 over the last two axes, which must be square).
    Tensors keep the dtype and device of `images`.

    Device: the images stay where they are (`sampler.to(device)` gives a sampler whose images live
    on `device`, moved once). The random draws come from the caller's generator on its own device
    (a CPU generator, whose state a checkpoint holds, for exact resume); the index arrays they give
    are small, built on the generator's device and moved to the images' device in one copy per
    meta-batch; the images themselves are gathered where they live, never copied per episode.
    """

    def __init__(
        self,
        images: torch.Tensor,
        ways: int,
        shots: int,
        queries: int,
        rotations: bool = False,
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim < 2:
            got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise ValueError(f"images: need a tensor [classes, drawers, ...]; got {got}")
        base_classes, drawers = images.shape[0], images.shape[1]
        if rotations and (images.ndim < 4 or images.shape[-1] != images.shape[-2]):
            raise ValueError(
                f"rotations: need square images [classes, drawers, ..., H, W]; "
                f"got shape {tuple(images.shape)}"
            )
        num_classes = base_classes * (4 if rotations else 1)
        if shots < 1:
            raise ValueError(f"shots: {shots} is below the minimum 1")
        if queries < 1:
            raise ValueError(f"queries: {queries} is below the minimum 1")
        if not 1 <= ways <= num_classes:
            raise ValueError(f"ways: {ways} is not in 1..{num_classes} (the number of classes)")
        if shots + queries > drawers:
            raise ValueError(
                f"shots/queries: shots + queries = {shots} + {queries} exceeds the {drawers} "
                f"drawers per class (support and query are drawn without replacement)"
            )
        self.images = images
        self.ways, self.shots, self.queries = ways, shots, queries
        self.rotations = rotations
        self.num_classes = num_classes
        self._base_classes = base_classes
        self._drawers = drawers
        self._rotation_index: torch.Tensor | None = None
        if rotations:
            h, w = images.shape[-2:]
            grid = torch.arange(h * w, device=images.device).view(h, w)
            # _rotation_index[r][p] = source pixel of output pixel p for a rot90 by r quarter turns
            self._rotation_index = torch.stack(
                [torch.rot90(grid, r, dims=(0, 1)).reshape(-1) for r in range(4)]
            )

    @property
    def device(self) -> torch.device:
        """Where the images live (and where episodes are gathered)."""
        return self.images.device

    def to(self, device: torch.device | str) -> EpisodeSampler:
        """This sampler with its images (same dtype: uint8 stays uint8) on `device`; `self` when
        they are already there. The same generator state gives the same episodes on any device."""
        device = _concrete(device)
        if self.images.device == device:
            return self
        moved = copy.copy(self)
        moved.images = self.images.to(device)
        if self._rotation_index is not None:
            moved._rotation_index = self._rotation_index.to(device)
        return moved

    def sample(self, batch: int, generator: torch.Generator) -> Episode:
        """Draw `batch` independent episodes (the same generator state gives the same episodes)."""
        if batch < 1:
            raise ValueError(f"batch: {batch} is below the minimum 1")
        n, k, q = self.ways, self.shots, self.queries
        # Every index array is built where the generator draws (the CPU for a run's generator:
        # its state is checkpointed, so a resumed run draws the same episodes), then all of them
        # go to the images' device in one small copy (int64, B x (3S + 3Q) entries).
        rand = generator.device
        # N distinct classes per episode, in random order: slot n gets label n.
        classes = torch.rand(batch, self.num_classes, generator=generator, device=rand)
        classes = classes.topk(n, dim=1).indices  # [B, N]
        # K + Q distinct drawers per (episode, class).
        draw = torch.rand(batch, n, self._drawers, generator=generator, device=rand)
        drawers = draw.argsort(dim=2)[..., : k + q]  # [B, N, K+Q]
        order = torch.rand(batch, n * q, generator=generator, device=rand).argsort(dim=1)
        labels = torch.arange(n, device=rand).expand(batch, n)
        rows = torch.arange(batch, device=rand)[:, None]
        # support: K rounds of N, position k*N + n is (slot n, drawer k)
        support_classes = classes[:, None, :].expand(batch, k, n).reshape(batch, k * n)
        support_y = labels[:, None, :].expand(batch, k, n).reshape(batch, k * n)
        support_drawers = drawers[:, :, :k].transpose(1, 2).reshape(batch, k * n)
        # queries: slot-major, then shuffled by `order` (a random query order per episode)
        query_classes = classes[:, :, None].expand(batch, n, q).reshape(batch, n * q)[rows, order]
        query_y = labels[:, :, None].expand(batch, n, q).reshape(batch, n * q)[rows, order]
        query_drawers = drawers[:, :, k:].reshape(batch, n * q)[rows, order]
        indices = (
            support_classes,
            support_drawers,
            support_y,
            query_classes,
            query_drawers,
            query_y,
        )
        support_classes, support_drawers, support_y, query_classes, query_drawers, query_y = (
            to_device(indices, self.images.device)
        )
        # then one gather per split from the image tensor, where it lives
        return Episode(
            self._gather(support_classes, support_drawers),
            support_y,
            self._gather(query_classes, query_drawers),
            query_y,
        )

    def _gather(self, classes: torch.Tensor, drawers: torch.Tensor) -> torch.Tensor:
        """Images [B, M, ...] of (class, drawer) pairs [B, M], rotated when `rotations`."""
        x = self.images[classes % self._base_classes, drawers]
        return self._rotate(x, classes // self._base_classes) if self.rotations else x

    def _rotate(self, x: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
        """Rotate x [B, M, ..., H, W] by quarter_turns [B, M] with one gather."""
        flat = x.flatten(-2)  # [B, M, ..., H*W]
        index = self._rotation_index[quarter_turns]  # [B, M, H*W]
        index = index.view(*index.shape[:2], *([1] * (flat.ndim - 3)), index.shape[-1])
        return flat.gather(-1, index.expand_as(flat)).view(x.shape)


def fixed_episodes(sampler: EpisodeSampler, count: int, seed: int, batch: int) -> Iterator[Episode]:
    """Yield `count` episodes in meta-batches of at most `batch`, the same ones for the same
    (count, seed, batch): fixed evaluation episodes (a private generator, global RNG untouched)."""
    if count < 1:
        raise ValueError(f"count: {count} is below the minimum 1")
    if batch < 1:
        raise ValueError(f"batch: {batch} is below the minimum 1")
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch):
        yield sampler.sample(min(batch, count - start), generator)
