"""The world's videos: shaped, coloured, textured objects moving over a background.

A video is drawn from a seed in three steps: the objects' attributes (``draw_things``: each object
after the first copies an earlier one and changes one or two of its attributes, so that distractors
share attributes with the targets), their trajectories (``draw_track``: where an object starts so
that it enters, leaves or stays in view), and the rendering (``render``: objects painted far to
near over the background, each pixel labelled with the nearest object that covers it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
COLOURS = {
    "red": (225, 35, 35),
    "green": (40, 200, 70),
    "blue": (45, 90, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (160, 60, 210),
}
SIZES = {"small": 0.1, "big": 0.19}  # half extent, share of the frame's short side
TEXTURES = ("plain", "striped", "dotted")
DIRECTIONS = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}
SPEEDS = {"slow": 0.025, "fast": 0.06}  # pixels per frame, share of the frame's short side
PATTERNS = ("still", "moves", "stops", "starts")
PRESENCES = ("stays", "enters", "leaves")
BACKGROUNDS = ("noise", "gradient", "stripes", "checker")
MUTABLE = ("size", "colour", "texture", "shape", "motion", "presence")
MIN_VISIBLE = 12  # pixels an object shows in a frame that counts as showing it


@dataclass(frozen=True)
class Thing:
    """What an object is and how it moves (the words can name every field but ``depth``).

    ``direction`` and ``speed`` are None for a still object; ``presence`` says whether it enters
    the view (invisible in the first frame), leaves it (invisible in the last) or stays.
    """

    shape: str
    colour: str
    size: str
    texture: str
    pattern: str
    direction: str | None
    speed: str | None
    presence: str


@dataclass(frozen=True)
class Track:
    """Where an object is: ``start`` centre (y, x) in pixels, ``step`` (dy, dx) per moving frame,
    ``switch`` the frame where a ``stops`` object stops or a ``starts`` object starts."""

    start: tuple[float, float]
    step: tuple[float, float]
    switch: int

    def centre(self, pattern: str, t: int) -> tuple[float, float]:
        moved = moving_frames(pattern, self.switch, t)
        return self.start[0] + moved * self.step[0], self.start[1] + moved * self.step[1]


@dataclass(frozen=True)
class Video:
    """One rendered video: frames uint8 [T, H, W, 3], labels uint8 [T, H, W] (0 background, k + 1
    where object k is the nearest), amodal bool [K, T, H, W] (each object's whole shape),
    ``depth`` the painting order (far to near) of the objects."""

    id: str
    things: tuple[Thing, ...]
    tracks: tuple[Track, ...]
    depth: tuple[int, ...]
    frames: np.ndarray
    labels: np.ndarray
    amodal: np.ndarray

    def visible(self, k: int) -> np.ndarray:
        """bool [T, H, W]: where object k is the nearest object."""
        return self.labels == k + 1

    def shown(self, k: int) -> np.ndarray:
        """bool [T]: the frames in which object k shows at least MIN_VISIBLE pixels."""
        return self.visible(k).sum(axis=(1, 2)) >= MIN_VISIBLE


def moving_frames(pattern: str, switch: int, t: int) -> int:
    """How many steps an object of ``pattern`` has made by frame t."""
    if pattern == "moves":
        return t
    if pattern == "stops":
        return min(t, switch)
    if pattern == "starts":
        return max(0, t - switch)
    return 0


def _draw_motion(rng: np.random.Generator) -> dict[str, str | None]:
    pattern = str(rng.choice(PATTERNS, p=(0.2, 0.4, 0.2, 0.2)))
    if pattern == "still":
        return {"pattern": pattern, "direction": None, "speed": None}
    return {
        "pattern": pattern,
        "direction": str(rng.choice(list(DIRECTIONS))),
        "speed": str(rng.choice(list(SPEEDS))),
    }


def _draw_presence(rng: np.random.Generator, pattern: str) -> str:
    """enters needs motion by the end (moves, starts), leaves motion at the end (moves)."""
    allowed = {"still": ("stays",), "stops": ("stays",), "starts": ("stays", "enters")}
    options = allowed.get(pattern, PRESENCES)
    return str(rng.choice(options, p=_presence_odds(options)))


def _presence_odds(options: tuple[str, ...]) -> np.ndarray:
    odds = np.array([1.5 if o == "stays" else 1.0 for o in options])
    return odds / odds.sum()


def draw_thing(rng: np.random.Generator) -> Thing:
    """An object with every attribute drawn afresh."""
    motion = _draw_motion(rng)
    return Thing(
        shape=str(rng.choice(SHAPES)),
        colour=str(rng.choice(list(COLOURS))),
        size=str(rng.choice(list(SIZES))),
        texture=str(rng.choice(TEXTURES)),
        presence=_draw_presence(rng, str(motion["pattern"])),
        **motion,
    )


def mutate(thing: Thing, rng: np.random.Generator) -> Thing:
    """A distractor of ``thing``: one or two of its MUTABLE attributes changed (to other values)."""
    changed = thing
    for name in rng.choice(MUTABLE, size=int(rng.integers(1, 3)), replace=False):
        changed = _change(changed, str(name), rng)
    return changed


def _change(thing: Thing, name: str, rng: np.random.Generator) -> Thing:
    if name == "motion":
        motion = _draw_motion(rng)
        while (motion["pattern"], motion["direction"]) == (thing.pattern, thing.direction):
            motion = _draw_motion(rng)
        return replace(thing, presence=_draw_presence(rng, str(motion["pattern"])), **motion)
    if name == "presence":
        return replace(thing, presence=_draw_presence(rng, thing.pattern))
    values = {"size": list(SIZES), "colour": list(COLOURS), "texture": TEXTURES, "shape": SHAPES}
    others = [v for v in values[name] if v != getattr(thing, name)]
    return replace(thing, **{name: str(rng.choice(others))})


def draw_things(rng: np.random.Generator, count: int) -> list[Thing]:
    """``count`` objects: the first drawn afresh, each next one mostly a distractor of an earlier
    one (``mutate``), sometimes drawn afresh."""
    things = [draw_thing(rng)]
    while len(things) < count:
        if rng.random() < 0.25:
            things.append(draw_thing(rng))
        else:
            things.append(mutate(things[int(rng.integers(len(things)))], rng))
    return things


def extent(thing: Thing, size: tuple[int, int]) -> float:
    """Half the object's width in pixels."""
    return SIZES[thing.size] * min(size)


def draw_track(
    thing: Thing, rng: np.random.Generator, size: tuple[int, int], frames: int
) -> Track | None:
    """A trajectory that makes ``thing`` enter, leave or stay as its ``presence`` says (staying
    objects keep their whole shape in view); None when its speed cannot make it in ``frames``."""
    half = extent(thing, size)
    switch = int(rng.integers(frames // 3, 2 * frames // 3 + 1))
    if thing.direction is None:
        centre = [rng.uniform(half, length - half) for length in size]
        return Track((centre[0], centre[1]), (0.0, 0.0), switch)
    unit = DIRECTIONS[thing.direction]
    axis = 0 if unit[0] else 1
    sign = unit[axis]
    speed = SPEEDS[str(thing.speed)] * min(size)
    travel = speed * moving_frames(thing.pattern, switch, frames - 1)
    bounds = _axis_bounds(thing.presence, half, travel, size[axis])
    if bounds is None:
        return None
    along = rng.uniform(*bounds)
    if sign < 0:
        along = size[axis] - along
    across = rng.uniform(half, size[1 - axis] - half)
    start = (along, across) if axis == 0 else (across, along)
    return Track(start, (unit[0] * speed, unit[1] * speed), switch)


def _axis_bounds(
    presence: str, half: float, travel: float, length: int
) -> tuple[float, float] | None:
    """Range of the starting coordinate along the motion (moving towards + ``length``): an
    entering object starts wholly outside and ends wholly inside, a leaving one starts wholly
    inside and ends wholly outside, a staying one is wholly inside throughout."""
    if presence == "enters":
        low, high = half - travel, -half - 1
    elif presence == "leaves":
        low, high = max(half, length + half + 1 - travel), length - 2 * half
    else:
        low, high = half, length - half - travel
    return (low, high) if low <= high else None


def shape_mask(
    shape: str, centre: tuple[float, float], half: float, size: tuple[int, int]
) -> np.ndarray:
    """bool [H, W]: ``shape`` of half extent ``half`` at ``centre`` (y, x), clipped to the frame."""
    canvas = np.zeros(size, np.uint8)
    cy, cx = centre
    if shape == "circle":
        cv2.circle(canvas, (round(cx * 16), round(cy * 16)), round(half * 16), 1, -1, cv2.LINE_8, 4)
    else:
        points = np.array(_outline(shape), np.float64) * half + (cx, cy)
        cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return canvas.astype(bool)


def _outline(shape: str) -> list[tuple[float, float]]:
    """Corners (x, y) of a unit shape (half extent 1) around the origin."""
    if shape == "square":
        return [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    if shape == "triangle":
        return [(0.0, -1.0), (1.0, 0.8), (-1.0, 0.8)]
    if shape == "diamond":
        return [(0.0, -1.0), (0.8, 0.0), (0.0, 1.0), (-0.8, 0.0)]
    if shape == "cross":
        a, b = 0.33, 1.0
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a),
                (-b, a), (-b, -a), (-a, -a)]  # fmt: skip
    angles = np.pi * np.arange(10) / 5 - np.pi / 2
    radii = np.where(np.arange(10) % 2, 0.45, 1.0)
    return list(zip(radii * np.cos(angles), radii * np.sin(angles), strict=True))


def texture_shade(texture: str, centre: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """float [H, W] in (0, 1]: how bright the object's colour is at each pixel (the pattern moves
    with the object)."""
    yy, xx = np.mgrid[: size[0], : size[1]].astype(np.float32)
    dy, dx = yy - round(centre[0]), xx - round(centre[1])
    if texture == "striped":
        return np.where((dx + dy) // 4 % 2 == 0, 1.0, 0.5).astype(np.float32)
    if texture == "dotted":
        dots = ((dx % 6) - 3) ** 2 + ((dy % 6) - 3) ** 2 <= 2
        return np.where(dots, 0.45, 1.0).astype(np.float32)
    return np.ones(size, np.float32)


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3]: a dim, low-saturation background of one of BACKGROUNDS."""
    kind = str(rng.choice(BACKGROUNDS))
    yy, xx = np.mgrid[: size[0], : size[1]].astype(np.float32)
    if kind == "noise":
        coarse = rng.random((size[0] // 8 + 1, size[1] // 8 + 1)).astype(np.float32)
        level = cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        level = (np.cos(angle) * xx / size[1] + np.sin(angle) * yy / size[0] + 1) / 2
    elif kind == "stripes":
        level = (np.sin(xx * rng.uniform(0.2, 0.6) + yy * rng.uniform(-0.3, 0.3)) + 1) / 2
    else:
        cell = int(rng.integers(6, 16))
        level = ((xx // cell + yy // cell) % 2).astype(np.float32)
    tint = rng.uniform(0.75, 1.0, 3).astype(np.float32)
    base = rng.uniform(35, 60)
    image = (base + 50 * np.clip(level, 0, 1))[..., None] * tint
    return np.clip(image, 0, 255).astype(np.uint8)


def render(
    video_id: str,
    things: list[Thing],
    tracks: list[Track],
    depth: list[int],
    backdrop: np.ndarray,
    frames: int,
) -> Video:
    """Paint the objects (on their ``tracks``) in ``depth`` order (far to near) over ``backdrop`` [H, W, 3], frame by
    frame; labels and amodal masks as Video says."""
    size = backdrop.shape[:2]
    images = np.repeat(backdrop[None], frames, axis=0)
    labels = np.zeros((frames, *size), np.uint8)
    amodal = np.zeros((len(things), frames, *size), bool)
    for t in range(frames):
        for k in depth:
            thing, centre = things[k], tracks[k].centre(things[k].pattern, t)
            mask = shape_mask(thing.shape, centre, extent(thing, size), size)
            shade = texture_shade(thing.texture, centre, size)[mask]
            images[t][mask] = (shade[:, None] * COLOURS[thing.colour]).astype(np.uint8)
            labels[t][mask] = k + 1
            amodal[k, t] = mask
    return Video(video_id, tuple(things), tuple(tracks), tuple(depth), images, labels, amodal)
