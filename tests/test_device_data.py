"""Data stay on the run's device: no per-step host-to-device copies beyond a small index tensor.

No GPU is needed: the families are built on torch's `meta` device (tensors with shapes and dtypes
but no storage), which stands in for a GPU, and a dispatch mode records every copy between
devices (`.to`, `.copy_`, `.cuda()` all end in `aten._to_copy` / `aten.copy_`). On the real
device, tests/gpu/test_gpu.py checks the values.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mtl_cli.config import compose
from mtl_cli.data.episodes import EpisodeSampler, to_device
from mtl_cli.families.sampling import EpochSampler
from mtl_cli.run import build_family
from tests.conftest import tiny

META = torch.device("meta")
CONV4_TINY = ["backbone=conv4", "backbone.hidden_channels=4"]
HERSHEY_META = ["task=meta/hershey_5w1s", "model=meta/protonet", *CONV4_TINY]


class CrossDeviceCopies(TorchDispatchMode):
    """Records (source device type, target device type, dtype, numel) of every copy between devices."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: list[tuple[str, str, torch.dtype, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default:
            src, dst = args[0], out
        elif func is torch.ops.aten.copy_.default:
            src, dst = args[1], args[0]
        else:
            return out
        if src.device != dst.device:
            self.copies.append((src.device.type, dst.device.type, src.dtype, src.numel()))
        return out


def family_and_model(tmp_path, device: torch.device, *overrides: str):
    """The family and model of a tiny run (`device` here; the config's device=cpu is not used)."""
    if any(o.startswith("task=") and "hershey" not in o for o in overrides):
        cfg = compose([f"paths.output_dir={tmp_path}", "trainer=debug", "device=cpu", *overrides])
    else:
        cfg = compose(tiny(tmp_path, *overrides))
    family = build_family(cfg, device)
    return family, family.build_model(cfg.model, cfg.get("backbone")).to(device)


def test_meta_family_holds_its_images_on_its_device_and_gathers_episodes_there(tmp_path):
    family, model = family_and_model(tmp_path, META, *HERSHEY_META, "task.meta_batch_size=4")
    for split, sampler in family.samplers.items():
        assert sampler.images.device == META, split
        assert sampler.images.dtype == torch.uint8  # converted to float per episode, there
        assert family.data.samplers[split].images.device.type == "cpu"  # moved, not changed
    storage = family.samplers["train"].images
    received = []
    prepare = family._prepare

    def spy(episode):
        received.append([t.device for t in episode.tensors()])
        return prepare(episode)

    family._prepare = spy
    generator = torch.Generator().manual_seed(0)  # the run's generator stays on the CPU
    with CrossDeviceCopies() as log:
        for _ in range(3):
            loss, _, _ = family.train_losses(model, generator)
    assert loss.device == META
    assert received == [[META] * 4] * 3  # `_prepare` gets tensors already on the device
    assert family.samplers["train"].images is storage  # the same tensor every step, no copy
    # per step: one int64 copy of the index arrays (B x 6 x (N*K or N*Q) entries), nothing else
    n, k, q, b = 5, 1, 5, 4  # hershey_5w1s with trainer=debug's defaults: 5 queries per class
    assert log.copies == [("cpu", "meta", torch.int64, b * 3 * (n * k + n * q))] * 3


def test_meta_family_on_the_cpu_uses_the_samplers_as_built(tmp_path):
    family, model = family_and_model(tmp_path, torch.device("cpu"), *HERSHEY_META)
    for split, sampler in family.samplers.items():
        assert sampler is family.data.samplers[split]  # no copy of the images
    with CrossDeviceCopies() as log:
        family.train_losses(model, torch.Generator().manual_seed(0))
        family.evaluate(model.eval(), "val")
    assert log.copies == []


def test_meta_evaluation_episodes_are_gathered_on_the_device(tmp_path):
    family, _ = family_and_model(
        tmp_path, META, *HERSHEY_META, "task.eval_episodes=6", "task.meta_batch_size=4"
    )
    with CrossDeviceCopies() as log:
        episodes = list(family._episodes("val"))
    assert [sx.shape[0] for sx, *_ in episodes] == [4, 2]
    assert all(t.device == META for episode in episodes for t in episode)
    assert [c[2] for c in log.copies] == [torch.int64, torch.int64]  # one index copy per batch


def test_sinusoid_episodes_move_in_one_copy_per_step(tmp_path):
    family, model = family_and_model(
        tmp_path,
        META,
        "task=meta/sinusoid",
        "model=meta/mann",
        "model.hidden_size=8",
        "model.num_layers=1",
        "task.meta_batch_size=3",
    )
    generator = torch.Generator().manual_seed(0)
    with CrossDeviceCopies() as log:
        for _ in range(2):
            family.train_losses(model, generator)
    points = 3 * (family.samplers["train"].shots + family.samplers["train"].queries)
    assert log.copies == [("cpu", "meta", torch.float32, 2 * points)] * 2  # x and y, packed


@pytest.mark.parametrize(
    "overrides",
    [[], ["task=multilabel/synthetic", "task.train_size=100", "model=hard_sharing"]],
    ids=["multitask", "multilabel"],
)
def test_batches_index_device_splits_with_one_index_copy_per_epoch(tmp_path, overrides):
    family, model = family_and_model(tmp_path, META, *overrides)
    splits = family.splits["train"]
    splits = splits if isinstance(splits, list) else [splits]
    assert all(part.x.device == META and part.y.device == META for part in splits)
    samplers = family.batches if isinstance(family.batches, list) else [family.batches]
    steps = 2 * max(len(part) // s.batch_size for part, s in zip(splits, samplers, strict=True))
    generator = torch.Generator().manual_seed(0)
    with CrossDeviceCopies() as log:
        for _ in range(steps):
            family.train_losses(model, generator)
    # one copy of a permutation per task and epoch begun; none in the other steps
    epochs = [
        -(-steps // (len(part) // s.batch_size)) for part, s in zip(splits, samplers, strict=True)
    ]
    expected = sorted(len(part) for part, e in zip(splits, epochs, strict=True) for _ in range(e))
    assert sorted(c[3] for c in log.copies) == expected
    assert {c[:3] for c in log.copies} == {("cpu", "meta", torch.int64)}


def test_epoch_sampler_state_is_on_the_cpu_and_restores_the_same_batches():
    sampler, generator = EpochSampler(10, 4, META), torch.Generator().manual_seed(0)
    batch = sampler.next(generator)
    assert batch.device == META and batch.shape == (4,)
    state, rng = sampler.state_dict(), generator.get_state()
    assert state["order"].device.type == "cpu"  # what the checkpoint holds
    on_device = EpochSampler(10, 4, META)
    on_device.load_state_dict(state)
    assert on_device.next(torch.Generator().manual_seed(0)).device == META
    # the same state on the CPU draws what an uninterrupted sampler draws
    reference, reference_rng = EpochSampler(10, 4), torch.Generator().manual_seed(0)
    reference.next(reference_rng)
    restored, restored_rng = EpochSampler(10, 4), torch.Generator()
    restored.load_state_dict(state)
    restored_rng.set_state(rng)
    assert [restored.next(restored_rng).tolist() for _ in range(5)] == [
        reference.next(reference_rng).tolist() for _ in range(5)
    ]


def test_to_device_returns_tensors_already_there_and_packs_the_rest_per_dtype():
    a, b, c = torch.arange(6).view(2, 3), torch.ones(4), torch.arange(5)
    assert all(x is y for x, y in zip(to_device((a, b, c), "cpu"), (a, b, c), strict=True))
    with CrossDeviceCopies() as log:
        moved = to_device((a, b, c), META)
    assert [(t.device, t.shape, t.dtype) for t in moved] == [
        (META, a.shape, a.dtype),
        (META, b.shape, b.dtype),
        (META, c.shape, c.dtype),
    ]
    assert sorted((str(c[2]), c[3]) for c in log.copies) == [
        ("torch.float32", 4),
        ("torch.int64", 11),
    ]


def test_episode_sampler_to_moves_images_once_and_keeps_their_dtype():
    images = torch.zeros(6, 4, 1, 3, 3, dtype=torch.uint8)
    sampler = EpisodeSampler(images, 2, 1, 1, rotations=True)
    assert sampler.to("cpu") is sampler
    moved = sampler.to(META)
    assert moved.images.device == META and moved.images.dtype == torch.uint8
    assert moved._rotation_index.device == META
    assert sampler.images.device.type == "cpu"  # the original is unchanged
    episode = moved.sample(3, torch.Generator().manual_seed(0))
    assert all(t.device == META for t in episode.tensors())
    assert episode.support_x.shape == (3, 2, 1, 3, 3)
