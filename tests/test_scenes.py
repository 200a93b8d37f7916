"""Procedural scenes: known answers from geometry, invariants, determinism, cache, builder."""

from __future__ import annotations

import numpy as np
import pytest

import mtl_cli.data.scenes as scenes_module
from mtl_cli.data.scenes import (
    BOX,
    CLASS_NAMES,
    CONE,
    CYLINDER,
    FLOOR,
    SPHERE,
    SceneParams,
    Scenes,
    build_scenes,
    cached_scenes,
    camera_rays,
    render,
)
from mtl_cli.errors import UserError
from mtl_cli.tasks.dense.scenes import scene_tasks

SIZE = 33  # odd: the centre pixel's ray is the optical axis
CENTRE = SIZE // 2


def _room(objects=(), pitch=0.0, camera_height=1.5) -> Scenes:
    """One plain-coloured room 6 m wide, 8 m deep, 3 m high; objects (shape, x, z, a, c, h, yaw)."""
    k = max(1, len(objects))
    rows = list(objects) + [(-1, 0, 0, 0, 0, 0, 0)] * (k - len(objects))
    cols = np.array(rows, dtype=float).T[:, None, :]
    return Scenes(
        camera_height=np.array([camera_height]),
        pitch=np.array([pitch]),
        room_left=np.array([-3.0]),
        room_right=np.array([3.0]),
        room_depth=np.array([8.0]),
        room_height=np.array([3.0]),
        shape=cols[0].astype(int),
        x=cols[1],
        z=cols[2],
        size_a=cols[3],
        size_c=cols[4],
        height=cols[5],
        yaw=cols[6],
        pattern=np.zeros((1, 3 + k), int),
        frequency=np.ones((1, 3 + k)),
        colour=np.full((1, 3 + k, 3), 0.5),
        colour2=np.full((1, 3 + k, 3), 0.5),
        light_dir=np.array([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]),
        light_power=np.array([[0.5, 0.0]]),
        ambient=np.array([0.2]),
    )


def _centre(out):
    return (
        int(out["classes"][0, CENTRE, CENTRE]),
        float(out["depth"][0, CENTRE, CENTRE]),
        out["normals"][0, CENTRE, CENTRE],
    )


def test_sphere_straight_ahead_depth_is_distance_minus_radius():
    # Radius 1.5 on a floor 1.5 m below the camera: the centre (0, 0, 5) is on the optical axis.
    out = render(_room([(SPHERE, 0.0, 5.0, 1.5, 0, 0, 0)]), SIZE, SIZE)
    cls, depth, normal = _centre(out)
    assert cls == SPHERE
    assert depth == pytest.approx(3.5, abs=1e-5)
    np.testing.assert_allclose(normal, [0, 0, -1], atol=1e-5)


def test_cylinder_and_cone_on_the_axis():
    cylinder = render(_room([(CYLINDER, 0.0, 4.0, 0.5, 0, 3.0, 0)]), SIZE, SIZE)
    cls, depth, normal = _centre(cylinder)
    assert (cls, depth) == (CYLINDER, pytest.approx(3.5, abs=1e-5))
    np.testing.assert_allclose(normal, [0, 0, -1], atol=1e-5)
    # Base radius 1, height 3, apex 1.5 m above the camera: at y = 0 the radius is 1.5/3 = 0.5;
    # the gradient (x - cx, -k^2 (y - apex), z - cz) = (0, -1.5/9, -0.5).
    cone = render(_room([(CONE, 0.0, 4.0, 1.0, 0, 3.0, 0)]), SIZE, SIZE)
    cls, depth, normal = _centre(cone)
    assert (cls, depth) == (CONE, pytest.approx(3.5, abs=1e-5))
    expected = np.array([0, -1.5 / 9, -0.5])
    np.testing.assert_allclose(normal, expected / np.linalg.norm(expected), atol=1e-5)


def test_yawed_box_is_hit_on_its_front_edge():
    # Half-widths 0.5, yaw 45 deg: the vertical edge nearest the camera is at z = 4 - 0.5 sqrt 2.
    out = render(_room([(BOX, 0.0, 4.0, 0.5, 0.5, 3.0, np.pi / 4)]), SIZE, SIZE)
    cls, depth, _ = _centre(out)
    assert (cls, depth) == (BOX, pytest.approx(4 - 0.5 * np.sqrt(2), abs=1e-5))


@pytest.mark.parametrize("pitch", [0.0, 0.2])
def test_floor_depth_and_normal_follow_the_plane(pitch):
    out = render(_room(pitch=pitch), SIZE, SIZE)
    floor = out["classes"][0] == FLOOR
    assert floor[-1].all() and not floor[0].any()
    c, s = np.cos(pitch), np.sin(pitch)
    np.testing.assert_allclose(
        out["normals"][0][floor], np.tile([0, -c, -s], (floor.sum(), 1)), atol=1e-6
    )
    # Bottom-right pixel by hand: v = (32.5 - 16.5) / f, f = 16.5 / tan 30 deg; the world ray's
    # y component is cos(p) v + sin(p); the floor is 1.5 m down, so depth = 1.5 / that.
    focal = 16.5 / np.tan(np.radians(30))
    v = 16.0 / focal
    assert out["depth"][0, -1, -1] == pytest.approx(1.5 / (c * v + s), rel=1e-6)


def test_box_in_front_hides_the_sphere():
    sphere = (SPHERE, 0.0, 6.0, 0.8, 0, 0, 0)
    alone = render(_room([sphere]), SIZE, SIZE)
    assert (alone["classes"] == SPHERE).sum() > 20
    hidden = render(_room([sphere, (BOX, 0.0, 3.0, 1.0, 0.5, 2.0, 0.0)]), SIZE, SIZE)
    assert not (hidden["classes"] == SPHERE).any()
    cls, depth, normal = _centre(hidden)
    assert (cls, depth) == (BOX, pytest.approx(2.5, abs=1e-5))
    np.testing.assert_allclose(normal, [0, 0, -1], atol=1e-6)


@pytest.fixture(scope="module")
def random_scenes():
    return build_scenes("train", 24, SceneParams(image_size=32, objects=(3, 6)), seed=5)


def test_random_scenes_have_declared_classes_and_unit_normals_facing_the_camera(random_scenes):
    classes = random_scenes["classes"]
    assert set(np.unique(classes)) == set(range(len(CLASS_NAMES)))
    normals = random_scenes["normals"].astype(np.float32)  # float16 in the cache
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=2e-3)
    rays = camera_rays(32, 32).T.reshape(3, 32, 32)
    facing = np.einsum("nchw,chw->nhw", normals, rays)
    assert facing.max() < 1e-3
    depth = random_scenes["depth"]
    assert depth.dtype == np.float32 and 0.5 < depth.min() and depth.max() < 15.0
    assert random_scenes["rgb"].dtype == np.uint8 and random_scenes["rgb"].std() > 20


def test_same_seed_same_scenes_and_images_depend_only_on_their_index(random_scenes):
    params = SceneParams(image_size=32, objects=(3, 6))
    again = build_scenes("train", 3, params, seed=5)
    for key, value in again.items():
        np.testing.assert_array_equal(value, random_scenes[key][:3])
    other_seed = build_scenes("train", 3, params, seed=6)
    other_split = build_scenes("val", 3, params, seed=5)
    for other in (other_seed, other_split):
        assert not np.array_equal(other["rgb"], again["rgb"])
        assert not np.array_equal(other["depth"], again["depth"])


def test_cache_round_trip(tmp_path, monkeypatch):
    params = SceneParams(image_size=16, objects=(1, 2))
    first = cached_scenes("val", 4, params, 0, str(tmp_path))
    assert len(list(tmp_path.glob("scenes-*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the second build must read the cache")

    monkeypatch.setattr(scenes_module, "build_scenes", refuse)
    second = cached_scenes("val", 4, params, 0, str(tmp_path))
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    with pytest.raises(AssertionError):  # another parameter is another entry
        cached_scenes("val", 4, SceneParams(image_size=16, objects=(1, 3)), 0, str(tmp_path))


def _builder(tmp_path, **overrides):
    options = dict(
        tasks=["segmentation", "depth", "normals"],
        image_size=16,
        train_size=6,
        val_size=2,
        test_size=3,
        objects=[1, 3],
        noise=0.02,
        data_seed=0,
    )
    options.update(overrides)
    return scene_tasks(
        **options, data={"root": None, "download": False, "cache_dir": str(tmp_path)}
    )


def test_builder_returns_dense_data(tmp_path):
    data = _builder(tmp_path, tasks=["normals", "segmentation"])
    assert data.task_names == ["segmentation", "normals"] and data.outputs == [7, 3]
    assert data.class_names == list(CLASS_NAMES) and data.input_shape == (3, 16, 16)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 6, "val": 2, "test": 3}
    train = data.splits["train"]
    assert train.x.dtype.is_floating_point and 0 <= train.x.min() and train.x.max() <= 1
    assert train.targets["segmentation"].shape == (6, 16, 16)
    assert train.targets["segmentation"].dtype.is_floating_point is False
    norms = train.targets["normals"].norm(dim=1)
    assert (norms - 1).abs().max() < 1e-5  # renormalised after the float16 cache
    depth = _builder(tmp_path, tasks=["depth"]).splits["test"].targets["depth"]
    assert depth.shape == (3, 1, 16, 16) and depth.min() > 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"tasks": ["depth", "edges"]}, "task.tasks: invalid value 'edges'"),
        ({"tasks": ["depth", "depth"]}, "listed more than once"),
        ({"tasks": []}, "task.tasks: empty"),
        ({"objects": [3, 2]}, "task.objects"),
        ({"objects": [0, 2]}, "task.objects"),
        ({"noise": -0.1}, "task.noise"),
        ({"image_size": 8}, "task.image_size"),
        ({"train_size": 0}, "task.train_size"),
    ],
)
def test_builder_refuses_bad_options(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        _builder(tmp_path, **overrides)
