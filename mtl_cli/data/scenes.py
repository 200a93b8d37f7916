"""Procedural indoor scenes with exact analytic ray casting: RGB, class, z-depth and normals.

A pinhole camera at the world origin looks into a box-shaped room (floor, back wall, side walls,
ceiling) holding spheres, yaw-rotated boxes, vertical cylinders and cones resting on the floor.
Every pixel casts one ray through its centre; the nearest hit among all surfaces is found with
closed-form intersections (no marching, no approximation), so class, depth and normal are exact.

Coordinates (world = camera before pitch): x right, y down, z forward, metres; the floor is the
plane y = camera height. The camera pitches down by `pitch` about its x axis. Camera-space ray
directions have z = 1, so a ray's parameter t is the z-depth along the optical axis.
Normals are unit vectors in camera coordinates that face the camera (n . ray < 0). Shading is
Lambertian from one or two directional lights plus ambient (no shadows), then Gaussian noise.
The scene family follows the CLEVR idea (Johnson et al., 2017: random simple shapes, materials and
lights, with exact per-pixel ground truth), here with a numpy ray caster instead of Blender.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_cli.data.cache import cached_arrays

RENDERER_VERSION = 1  # bump when rendering changes, so cached scenes are rebuilt
CLASS_NAMES = ("floor", "wall", "ceiling", "sphere", "box", "cylinder", "cone")
FLOOR, WALL, CEILING, SPHERE, BOX, CYLINDER, CONE = range(len(CLASS_NAMES))
SHAPES = (SPHERE, BOX, CYLINDER, CONE)
FOV_DEG = 60.0  # horizontal field of view
ROOM_MATERIALS = 3  # floor, walls, ceiling; object k uses material ROOM_MATERIALS + k
PLAIN, CHECKER, STRIPES = range(3)
_EPS = 1e-6
_CHUNK = 32  # images per vectorised chunk


@dataclass
class Scenes:
    """A batch of n scenes as explicit arrays (all lengths in metres, angles in radians).

    Objects are padded to K slots; `shape` is -1 for an empty slot. For a sphere `size_a` is the
    radius; a box has half-widths (`size_a` along its local x, `size_c` along its local z) and
    height `height`; a cylinder has radius `size_a` and height `height`; a cone has base radius
    `size_a` and height `height` (apex up). Every object stands on the floor at (x, z).
    Materials: slot 0 floor, 1 walls, 2 ceiling, 3 + k object k; pattern PLAIN | CHECKER |
    STRIPES with `frequency` cycles per metre alternating `colour` and `colour2`.
    Lights: unit directions the light travels (world) and intensities (0 = off).
    """

    camera_height: np.ndarray  # [n]
    pitch: np.ndarray  # [n], > 0 looks down
    room_left: np.ndarray  # [n] x of the left wall (< 0)
    room_right: np.ndarray  # [n] x of the right wall (> 0)
    room_depth: np.ndarray  # [n] z of the back wall
    room_height: np.ndarray  # [n] ceiling height above the floor
    shape: np.ndarray  # [n, K] int
    x: np.ndarray  # [n, K]
    z: np.ndarray  # [n, K]
    size_a: np.ndarray  # [n, K]
    size_c: np.ndarray  # [n, K]
    height: np.ndarray  # [n, K]
    yaw: np.ndarray  # [n, K]
    pattern: np.ndarray  # [n, 3 + K] int
    frequency: np.ndarray  # [n, 3 + K]
    colour: np.ndarray  # [n, 3 + K, 3]
    colour2: np.ndarray  # [n, 3 + K, 3]
    light_dir: np.ndarray  # [n, L, 3]
    light_power: np.ndarray  # [n, L]
    ambient: np.ndarray  # [n]

    def __len__(self) -> int:
        return len(self.camera_height)

    def subset(self, index: slice) -> Scenes:
        return Scenes(**{k: v[index] for k, v in vars(self).items()})


def camera_rays(height: int, width: int, fov_deg: float = FOV_DEG) -> np.ndarray:
    """Camera-space directions through the pixel centres, [H * W, 3] with z = 1 (row-major)."""
    focal = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    u = (cols.ravel() + 0.5 - width / 2.0) / focal
    v = (rows.ravel() + 0.5 - height / 2.0) / focal
    return np.stack([u, v, np.ones_like(u)], axis=1)


def _first_positive(t: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(t) & (t > _EPS), t, np.inf)


def _sphere_t(d, cx, cy, cz, r):
    """Nearest hit of rays 0 + t d with spheres (camera outside): d [B,1,P,3], params [B,k,1]."""
    a = d[..., 0] ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2
    b = d[..., 0] * cx + d[..., 1] * cy + d[..., 2] * cz
    c = cx * cx + cy * cy + cz * cz - r * r
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / a
    return _first_positive(np.where(disc >= 0, t, np.inf))


def _yaw_rotate(vx, vz, yaw):
    """Rotate (x, z) by -yaw about the vertical axis (world -> object frame)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return c * vx - s * vz, s * vx + c * vz


def _box_t(d, cx, cy, cz, hx, hy, hz, yaw):
    """Slab test in the box frame (yaw about y); camera outside every box."""
    ox, oz = _yaw_rotate(-cx, -cz, yaw)
    oy = -cy
    dx, dz = _yaw_rotate(d[..., 0], d[..., 2], yaw)
    dy = d[..., 1]
    near, far = np.full(dx.shape, -np.inf), np.full(dx.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, di, h in ((ox, dx, hx), (oy, dy, hy), (oz, dz, hz)):
            t1, t2 = (-h - o) / di, (h - o) / di
            near = np.maximum(near, np.minimum(t1, t2))
            far = np.minimum(far, np.maximum(t1, t2))
    return _first_positive(np.where(far >= near, near, np.inf))


def _cylinder_side_t(d, cx, cz, r, top, bottom):
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = d[..., 0] * cx + d[..., 2] * cz
    c = cx * cx + cz * cz - r * r
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (b - np.sqrt(disc)) / a
    y = t * d[..., 1]
    return _first_positive(np.where((disc >= 0) & (y >= top) & (y <= bottom), t, np.inf))


def _cylinder_cap_t(d, cx, cz, r, top):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = top / d[..., 1]
        inside = (t * d[..., 0] - cx) ** 2 + (t * d[..., 2] - cz) ** 2 <= r * r
    return _first_positive(np.where(inside, t, np.inf))


def _cone_t(d, cx, cz, apex, bottom, k):
    """Cone (x-cx)^2 + (z-cz)^2 = k^2 (y-apex)^2 between the apex and the floor."""
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    k2 = k * k
    a = dx * dx + dz * dz - k2 * dy * dy
    b = -(dx * cx + dz * cz) + k2 * dy * apex  # half of the linear coefficient
    c = cx * cx + cz * cz - k2 * apex * apex
    disc = b * b - a * c
    best = np.full(a.shape, np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(disc)
        for t in ((-b - root) / a, (-b + root) / a):
            y = t * dy
            ok = (disc >= 0) & (y >= apex) & (y <= bottom)
            best = np.minimum(best, _first_positive(np.where(ok, t, np.inf)))
    return best


def _slots(shape: np.ndarray, kind: int):
    """Object slots of one kind, left-packed: indices [B, k] and validity [B, k]."""
    mask = shape == kind
    k = int(mask.sum(axis=1).max()) if mask.size else 0
    order = np.argsort(~mask, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(mask, order, axis=1)


def _take(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.take_along_axis(values, order, axis=1)[..., None]


def _pattern(pattern, frequency, local):
    """0/1 per hit: checker over the three local coordinates, stripes along local x."""
    cells = np.floor(local * frequency[:, None])
    checker = cells.sum(axis=1) % 2
    stripes = cells[:, 0] % 2
    return np.where(pattern == CHECKER, checker, np.where(pattern == STRIPES, stripes, 0.0))


def _render_chunk(scenes: Scenes, rays: np.ndarray) -> dict[str, np.ndarray]:
    """Nearest hit of every ray in every scene, then its class, normal, texture and shading."""
    n, p = len(scenes), len(rays)
    cos, sin = np.cos(scenes.pitch)[:, None], np.sin(scenes.pitch)[:, None]
    u, v = rays[None, :, 0], rays[None, :, 1]  # camera z = 1
    # world directions [B, P, 3] = R d: camera z tilts towards world +y (down) by the pitch
    d = np.stack([np.broadcast_to(u, (n, p)), cos * v + sin, cos - sin * v], axis=-1)
    d4 = d[:, None]  # [B, 1, P, 3]
    floor_y = scenes.camera_height
    ceiling_y = floor_y - scenes.room_height
    with np.errstate(divide="ignore", invalid="ignore"):
        planes = np.stack(
            [
                np.where(d[..., 1] > 0, floor_y[:, None] / d[..., 1], np.inf),
                np.where(d[..., 1] < 0, ceiling_y[:, None] / d[..., 1], np.inf),
                np.where(d[..., 2] > 0, scenes.room_depth[:, None] / d[..., 2], np.inf),
                np.where(d[..., 0] < 0, scenes.room_left[:, None] / d[..., 0], np.inf),
                np.where(d[..., 0] > 0, scenes.room_right[:, None] / d[..., 0], np.inf),
            ],
            axis=1,
        )
    candidates = [_first_positive(planes)]
    # per candidate group: its name, its object slots [B, k] (None: the room planes), its size
    groups: list[tuple[str, np.ndarray | None, int]] = [("planes", None, 5)]
    fy = floor_y[:, None, None]
    for kind in SHAPES:
        order, valid = _slots(scenes.shape, kind)
        if order.shape[1] == 0:
            continue
        cx, cz, a = _take(scenes.x, order), _take(scenes.z, order), _take(scenes.size_a, order)
        h = _take(scenes.height, order)
        if kind == SPHERE:
            parts = {"sphere": _sphere_t(d4, cx, fy - a, cz, a)}
        elif kind == BOX:
            cc, yaw = _take(scenes.size_c, order), _take(scenes.yaw, order)
            parts = {"box": _box_t(d4, cx, fy - h / 2, cz, a, h / 2, cc, yaw)}
        elif kind == CYLINDER:
            parts = {
                "cylinder_side": _cylinder_side_t(d4, cx, cz, a, fy - h, fy),
                "cylinder_cap": _cylinder_cap_t(d4, cx, cz, a, fy - h),
            }
        else:
            parts = {"cone": _cone_t(d4, cx, cz, fy - h, fy, a / np.where(h > 0, h, 1.0))}
        for name, t in parts.items():
            candidates.append(np.where(valid[..., None], t, np.inf))
            groups.append((name, order, order.shape[1]))
    depth = np.full((n, p), np.inf)  # nearest hit so far and the surface it belongs to
    winner = np.zeros((n, p), dtype=np.int64)
    surface = 0
    for t in candidates:
        for i in range(t.shape[1]):
            nearer = t[:, i] < depth
            np.copyto(depth, t[:, i], where=nearer)
            winner[nearer] = surface
            surface += 1
    classes = np.zeros((n, p), dtype=np.int8)
    normal = np.zeros((n, p, 3))
    material = np.zeros((n, p), dtype=np.int64)
    local = np.zeros((n, p, 3))
    start = 0
    for name, order, count in groups:
        hit_b, hit_p = np.nonzero((winner >= start) & (winner < start + count))
        slot = winner[hit_b, hit_p] - start
        start += count
        point = depth[hit_b, hit_p, None] * d[hit_b, hit_p]
        if name == "planes":
            surface_class = np.array([FLOOR, CEILING, WALL, WALL, WALL])[slot]
            normals = np.array([[0, -1, 0], [0, 1, 0], [0, 0, -1], [1, 0, 0], [-1, 0, 0]])
            classes[hit_b, hit_p] = surface_class
            normal[hit_b, hit_p] = normals[slot]
            material[hit_b, hit_p] = np.array([0, 2, 1, 1, 1])[slot]
            local[hit_b, hit_p] = point
            continue
        k = order[hit_b, slot]
        centre = np.stack(
            [scenes.x[hit_b, k], floor_y[hit_b], scenes.z[hit_b, k]], axis=1
        )  # base centre on the floor
        a, h, yaw = scenes.size_a[hit_b, k], scenes.height[hit_b, k], scenes.yaw[hit_b, k]
        rel = point - centre
        lx, lz = _yaw_rotate(rel[:, 0], rel[:, 2], yaw)
        ly = rel[:, 1]
        if name == "sphere":
            n_vec = (rel + np.stack([0 * a, a, 0 * a], axis=1)) / a[:, None]
            shape_class = SPHERE
        elif name == "box":
            half = np.stack([a, h / 2, scenes.size_c[hit_b, k]], axis=1)
            box_local = np.stack([lx, ly + h / 2, lz], axis=1) / half
            axis = np.argmax(np.abs(box_local), axis=1)
            n_local = np.zeros_like(box_local)
            n_local[np.arange(len(axis)), axis] = np.sign(box_local[np.arange(len(axis)), axis])
            c, s = np.cos(yaw), np.sin(yaw)  # object -> world: rotate by +yaw
            n_vec = np.stack(
                [
                    c * n_local[:, 0] + s * n_local[:, 2],
                    n_local[:, 1],
                    -s * n_local[:, 0] + c * n_local[:, 2],
                ],
                axis=1,
            )
            shape_class = BOX
        elif name == "cylinder_side":
            n_vec = np.stack([rel[:, 0], 0 * a, rel[:, 2]], axis=1) / a[:, None]
            shape_class = CYLINDER
        elif name == "cylinder_cap":
            n_vec = np.tile([0.0, -1.0, 0.0], (len(a), 1))
            shape_class = CYLINDER
        else:
            k2 = (a / h) ** 2
            n_vec = np.stack([rel[:, 0], -k2 * (rel[:, 1] + h), rel[:, 2]], axis=1)
            shape_class = CONE
        classes[hit_b, hit_p] = shape_class
        normal[hit_b, hit_p] = n_vec / np.linalg.norm(n_vec, axis=1, keepdims=True)
        material[hit_b, hit_p] = ROOM_MATERIALS + k
        local[hit_b, hit_p] = np.stack([lx, ly, lz], axis=1)
    rows = np.arange(n)[:, None]
    stripe = _pattern(
        scenes.pattern[rows, material].ravel(),
        scenes.frequency[rows, material].ravel(),
        local.reshape(-1, 3),
    ).reshape(n, p, 1)
    albedo = np.where(stripe > 0, scenes.colour2[rows, material], scenes.colour[rows, material])
    shade = np.repeat(scenes.ambient[:, None], p, axis=1)
    for light in range(scenes.light_dir.shape[1]):
        direction = scenes.light_dir[:, None, light]
        facing = -(normal * direction).sum(axis=-1)
        shade += scenes.light_power[:, light, None] * np.clip(facing, 0.0, None)
    rgb = albedo * shade[..., None]
    normal_camera = np.stack(  # R^T n
        [
            normal[..., 0],
            cos * normal[..., 1] - sin * normal[..., 2],
            sin * normal[..., 1] + cos * normal[..., 2],
        ],
        axis=-1,
    )
    return {"rgb": rgb, "classes": classes, "depth": depth, "normals": normal_camera}


def render(
    scenes: Scenes, height: int, width: int, fov_deg: float = FOV_DEG
) -> dict[str, np.ndarray]:
    """Ray-cast `scenes`: rgb float32 [n,H,W,3] (noise-free, unclipped), classes int8 [n,H,W],
    depth float32 [n,H,W] (z-depth, metres), normals float32 [n,H,W,3] (camera coordinates)."""
    rays = camera_rays(height, width, fov_deg)
    n = len(scenes)
    out = {
        "rgb": np.empty((n, height, width, 3), np.float32),
        "classes": np.empty((n, height, width), np.int8),
        "depth": np.empty((n, height, width), np.float32),
        "normals": np.empty((n, height, width, 3), np.float32),
    }
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        chunk = _render_chunk(scenes.subset(part), rays)
        for key, value in chunk.items():
            out[key][part] = value.reshape(out[key][part].shape)
    return out


@dataclass(frozen=True)
class SceneParams:
    """What a split of random scenes depends on (with the seed, the split and the image index)."""

    image_size: int = 64
    objects: tuple[int, int] = (2, 5)  # [min, max] objects per scene
    noise: float = 0.02  # std of the Gaussian noise added to RGB in [0, 1]


SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_SCENE_U, _LIGHT_U, _OBJECT_U, _MATERIAL_U = 9, 4, 7, 6
_LIGHTS = 2


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: depends only on (seed, split, index), so splits are disjoint."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(SPLIT_CODES[split], index))
    )


def _lerp(u: np.ndarray, low: float, high: float) -> np.ndarray:
    return low + (high - low) * u


def sample_scenes(u: np.ndarray, objects: tuple[int, int]) -> Scenes:
    """Map uniforms u [n, M] (M = `uniforms_per_scene(objects[1])`) to scenes, vectorised.

    Ranges: camera 1.2-1.7 m above the floor, pitched 5-20 deg down; room 5-8 m wide (centre
    within 1 m of the camera), back wall 6-10 m away, 2.6-3.2 m high; objects 1.8 m to min(6 m, back wall
    - 0.8 m) away, inside 80 % of the horizontal field of view and 0.7 m from the side walls;
    shapes uniform; 1 or 2 directional lights from above; ambient 0.15-0.35.
    """
    low, high = objects
    n, k = len(u), high
    scene = u[:, :_SCENE_U]
    lights = u[:, _SCENE_U : _SCENE_U + _LIGHTS * _LIGHT_U].reshape(n, _LIGHTS, _LIGHT_U)
    at = _SCENE_U + _LIGHTS * _LIGHT_U
    obj = u[:, at : at + k * _OBJECT_U].reshape(n, k, _OBJECT_U)
    at += k * _OBJECT_U
    mat = u[:, at : at + (ROOM_MATERIALS + k) * _MATERIAL_U].reshape(n, ROOM_MATERIALS + k, -1)

    width, centre = _lerp(scene[:, 2], 5.0, 8.0), _lerp(scene[:, 3], -1.0, 1.0)
    room_depth = _lerp(scene[:, 4], 6.0, 10.0)
    count = low + np.minimum(np.floor(scene[:, 6] * (high - low + 1)), high - low).astype(int)
    shape = np.array(SHAPES)[np.minimum((obj[..., 0] * 4).astype(int), 3)]
    shape = np.where(np.arange(k)[None] < count[:, None], shape, -1)
    z = _lerp(obj[..., 1], 1.8, np.minimum(room_depth - 0.8, 6.0)[:, None])
    left, right = (centre - width / 2)[:, None], (centre + width / 2)[:, None]
    view = 0.8 * z * np.tan(np.radians(FOV_DEG) / 2)
    x_low, x_high = np.maximum(-view, left + 0.7), np.minimum(view, right - 0.7)
    ranges = {  # shape -> (size_a, size_c, height) ranges
        SPHERE: ((0.3, 0.7), (0.0, 0.0), (0.0, 0.0)),
        BOX: ((0.3, 0.7), (0.3, 0.7), (0.5, 1.5)),
        CYLINDER: ((0.25, 0.55), (0.0, 0.0), (0.6, 1.6)),
        CONE: ((0.35, 0.7), (0.0, 0.0), (0.7, 1.7)),
    }
    sizes = np.zeros((3, n, k))
    for kind, bounds in ranges.items():
        for i, (lo, hi) in enumerate(bounds):
            sizes[i] = np.where(shape == kind, _lerp(obj[..., 4 + i], lo, hi), sizes[i])
    sizes[2] = np.where(shape == SPHERE, 2 * sizes[0], sizes[2])  # a sphere's height: its diameter

    direction = np.stack(
        [
            _lerp(lights[..., 0], -1, 1),
            _lerp(lights[..., 1], 0.6, 1.6),
            _lerp(lights[..., 2], 0.2, 1),
        ],
        axis=-1,
    )
    power = _lerp(lights[..., 3], 0.5, 0.9) * np.array([1.0, 0.6])
    power[:, 1] *= scene[:, 7] >= 0.5  # a second light in half of the scenes
    colour = _lerp(mat[..., 2:5], 0.15, 0.95)
    return Scenes(
        camera_height=_lerp(scene[:, 0], 1.2, 1.7),
        pitch=np.radians(_lerp(scene[:, 1], 5.0, 20.0)),
        room_left=centre - width / 2,
        room_right=centre + width / 2,
        room_depth=room_depth,
        room_height=_lerp(scene[:, 5], 2.6, 3.2),
        shape=shape,
        x=_lerp(obj[..., 2], x_low, x_high),
        z=z,
        size_a=sizes[0],
        size_c=sizes[1],
        height=sizes[2],
        yaw=_lerp(obj[..., 3], 0.0, 2 * np.pi),
        pattern=np.minimum((mat[..., 0] * 3).astype(int), 2),
        frequency=_lerp(mat[..., 1], 1.5, 4.5),
        colour=colour,
        colour2=colour * _lerp(mat[..., 5:6], 0.35, 0.65),
        light_dir=direction / np.linalg.norm(direction, axis=-1, keepdims=True),
        light_power=power,
        ambient=_lerp(scene[:, 8], 0.15, 0.35),
    )


def uniforms_per_scene(max_objects: int) -> int:
    return (
        _SCENE_U
        + _LIGHTS * _LIGHT_U
        + max_objects * (_OBJECT_U + _MATERIAL_U)
        + (ROOM_MATERIALS * _MATERIAL_U)
    )


def build_scenes(split: str, count: int, params: SceneParams, seed: int) -> dict[str, np.ndarray]:
    """Render `count` scenes of `split`: rgb uint8 [n,3,H,W], classes int8 [n,H,W], depth float32
    [n,1,H,W] (z-depth, metres), normals float16 [n,3,H,W] (unit, camera coordinates)."""
    size, m = params.image_size, uniforms_per_scene(params.objects[1])
    rngs = [scene_rng(seed, split, i) for i in range(count)]
    u = np.stack([rng.random(m) for rng in rngs]) if count else np.zeros((0, m))
    out = render(sample_scenes(u, tuple(params.objects)), size, size)
    rgb = np.empty((count, 3, size, size), np.uint8)
    for i, rng in enumerate(rngs):  # each image's noise comes from its own generator
        noisy = out["rgb"][i] + params.noise * rng.standard_normal((size, size, 3))
        rgb[i] = np.rint(np.clip(noisy, 0.0, 1.0) * 255).transpose(2, 0, 1)
    return {
        "rgb": rgb,
        "classes": out["classes"],
        "depth": out["depth"][:, None],
        "normals": out["normals"].transpose(0, 3, 1, 2).astype(np.float16),
    }


def cached_scenes(
    split: str, count: int, params: SceneParams, seed: int, cache_dir: str | None = None
) -> dict[str, np.ndarray]:
    """`build_scenes`, stored in (and read from) the disk cache keyed by every parameter."""
    key = {
        "renderer": RENDERER_VERSION,
        "split": split,
        "count": int(count),
        "seed": int(seed),
        "image_size": int(params.image_size),
        "objects": [int(v) for v in params.objects],
        "noise": float(params.noise),
        "fov_deg": FOV_DEG,
    }
    return cached_arrays("scenes", key, lambda: build_scenes(split, count, params, seed), cache_dir)
