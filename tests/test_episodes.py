"""Episode sampler (N-way K-shot, rotations, fixed evaluation episodes) and sinusoid tasks."""

import math

import pytest
import torch

from mtl_cli.data.episodes import Episode, EpisodeSampler, fixed_episodes
from mtl_cli.data.sinusoid import SinusoidTasks


def id_images(classes: int, drawers: int, size: int = 2) -> torch.Tensor:
    """images[c, d] is filled with the id c * drawers + d, so every sample names its source."""
    ids = torch.arange(classes * drawers, dtype=torch.float32).view(classes, drawers, 1, 1)
    return ids.expand(classes, drawers, size, size).clone()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_and_dtypes():
    images = torch.zeros(12, 7, 1, 5, 5, dtype=torch.uint8)
    ep = EpisodeSampler(images, ways=4, shots=2, queries=3).sample(6, gen())
    assert ep.support_x.shape == (6, 8, 1, 5, 5)
    assert ep.query_x.shape == (6, 12, 1, 5, 5)
    assert ep.support_y.shape == (6, 8) and ep.query_y.shape == (6, 12)
    assert ep.support_x.dtype == torch.uint8
    assert ep.support_y.dtype == torch.int64 and ep.query_y.dtype == torch.int64


def test_label_counts_support_order_and_disjoint_draws():
    classes, drawers, n, k, q, b = 9, 6, 4, 2, 3, 50
    ep = EpisodeSampler(id_images(classes, drawers), n, k, q).sample(b, gen(1))
    # each label exactly K times in the support and Q times in the query
    assert (torch.nn.functional.one_hot(ep.support_y, n).sum(1) == k).all()
    assert (torch.nn.functional.one_hot(ep.query_y, n).sum(1) == q).all()
    # support in K rounds of N: position k*N + n has label n
    assert torch.equal(ep.support_y, torch.arange(n).repeat(k).expand(b, -1))
    ids = torch.cat([ep.support_x, ep.query_x], 1)[..., 0, 0].long()  # [B, N*(K+Q)]
    labels = torch.cat([ep.support_y, ep.query_y], 1)
    source_class = ids // drawers
    # no drawer is used twice in an episode: support and query disjoint, drawn without replacement
    assert all(len(set(row.tolist())) == n * (k + q) for row in ids)
    for row_class, row_label in zip(source_class, labels, strict=True):
        mapping = {}
        for c, y in zip(row_class.tolist(), row_label.tolist(), strict=True):
            assert mapping.setdefault(y, c) == c  # one class per label
        assert len(set(mapping.values())) == n  # the N classes are distinct


def test_label_mapping_is_a_random_permutation_varying_across_episodes():
    n = 5  # ways == classes: every episode uses all classes, only the labelling changes
    ep = EpisodeSampler(id_images(n, 4), n, 1, 1).sample(300, gen(2))
    label_to_class = ep.support_x[:, :n, 0, 0].long() // 4  # [B, N] class of labels 0..N-1
    assert (label_to_class.sort(1).values == torch.arange(n)).all()  # a permutation
    assert len({tuple(r) for r in label_to_class.tolist()}) > 50  # varies across episodes
    label_of_class0 = (label_to_class == 0).float().argmax(1)
    counts = torch.bincount(label_of_class0, minlength=n)
    assert (counts > 300 / n / 2).all()  # every label value taken, roughly uniformly


def test_query_order_is_shuffled():
    ep = EpisodeSampler(id_images(6, 10), 3, 1, 4).sample(40, gen(3))
    blocked = torch.arange(3).repeat_interleave(4)
    assert not (ep.query_y == blocked).all(1).all()
    assert len({tuple(r) for r in ep.query_y.tolist()}) > 10


def test_same_seed_same_episodes_other_seed_different():
    sampler = EpisodeSampler(torch.rand(20, 8, 3, 3), 5, 1, 2)
    a, b, c = sampler.sample(4, gen(7)), sampler.sample(4, gen(7)), sampler.sample(4, gen(8))
    for x, y in zip(a.tensors(), b.tensors(), strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.support_x, c.support_x)


def test_rotations_make_rotated_copies_as_new_classes():
    classes, drawers, size = 2, 5, 4
    images = torch.arange(classes * drawers * size * size, dtype=torch.float32)
    images = images.view(classes, drawers, size, size)
    sampler = EpisodeSampler(images, ways=6, shots=2, queries=1, rotations=True)
    assert sampler.num_classes == 8  # 2 base classes x 4 rotations: 6-way is possible
    ep = sampler.sample(30, gen(4))
    seen_turns = set()
    for xs in (ep.support_x, ep.query_x):
        for episode_x in xs:
            for x in episode_x:
                source = int(x.min()) // (size * size)  # rotation keeps the pixel values
                original = images.view(-1, size, size)[source]
                turns = [r for r in range(4) if torch.equal(torch.rot90(original, r), x)]
                assert len(turns) == 1
                seen_turns.add(turns[0])
    assert seen_turns == {0, 1, 2, 3}
    # within an episode, a label is one (base class, rotation) pair: all its images share the turn
    support = ep.support_x.view(30, 2, 6, size, size)  # [B, K, N, H, W]
    first, second = support[:, 0], support[:, 1]
    for a, b in zip(first.reshape(-1, size, size), second.reshape(-1, size, size), strict=True):
        src_a = images.view(-1, size, size)[int(a.min()) // 16]
        src_b = images.view(-1, size, size)[int(b.min()) // 16]
        turn_a = next(r for r in range(4) if torch.equal(torch.rot90(src_a, r), a))
        turn_b = next(r for r in range(4) if torch.equal(torch.rot90(src_b, r), b))
        assert turn_a == turn_b
        assert int(a.min()) // (16 * drawers) == int(b.min()) // (16 * drawers)  # same base class


def test_errors_name_the_argument():
    images = torch.zeros(10, 5, 4, 4)
    with pytest.raises(ValueError, match="shots/queries.*3 \\+ 3.*5 drawers"):
        EpisodeSampler(images, 2, 3, 3)
    with pytest.raises(ValueError, match="ways: 11"):
        EpisodeSampler(images, 11, 1, 1)
    with pytest.raises(ValueError, match="rotations: need square"):
        EpisodeSampler(torch.zeros(10, 5, 4, 3), 2, 1, 1, rotations=True)
    with pytest.raises(ValueError, match="shots: 0"):
        EpisodeSampler(images, 2, 0, 1)
    with pytest.raises(ValueError, match="batch: 0"):
        EpisodeSampler(images, 2, 1, 1).sample(0, gen())


def test_fixed_episodes_repeat_for_the_same_seed():
    sampler = EpisodeSampler(torch.rand(15, 6, 2, 2), 3, 1, 2)
    first = list(fixed_episodes(sampler, count=7, seed=11, batch=3))
    again = list(fixed_episodes(sampler, count=7, seed=11, batch=3))
    other = list(fixed_episodes(sampler, count=7, seed=12, batch=3))
    assert [e.support_x.shape[0] for e in first] == [3, 3, 1]
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors(), strict=True))
    assert not torch.equal(first[0].support_x, other[0].support_x)


def test_episode_to_moves_every_tensor():
    ep = Episode(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1))
    assert all(t.device.type == "cpu" for t in ep.to("cpu").tensors())


def test_sinusoid_targets_follow_the_task_function():
    tasks = SinusoidTasks(shots=10, queries=5)
    ep = tasks.sample(64, gen(5))
    assert ep.support_x.shape == (64, 10, 1) and ep.query_y.shape == (64, 5, 1)
    amp, phase, x = tasks.sample_with_parameters(64, gen(5))  # same generator state
    assert torch.equal(torch.cat([ep.support_x, ep.query_x], 1), x)
    expected = amp * torch.sin(x - phase)  # Finn et al. 2017: A sin(x - phi)
    assert torch.allclose(torch.cat([ep.support_y, ep.query_y], 1), expected)
    assert (amp >= 0.1).all() and (amp <= 5.0).all()
    assert (phase >= 0).all() and (phase <= math.pi).all()
    assert (x >= -5).all() and (x <= 5).all() and x.std() > 2.0


def test_sinusoid_bad_ranges():
    with pytest.raises(ValueError, match="x_range"):
        SinusoidTasks(5, 5, x_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="amp"):
        SinusoidTasks(5, 5, amp=(5.0, 0.1))
    with pytest.raises(ValueError, match="queries: 0"):
        SinusoidTasks(5, 0)
