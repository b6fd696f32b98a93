"""Referring expressions of the world: a constraint (attribute kind -> value) and its words.

An expression is a constraint over the attributes words can name (``describable``); it refers to
every object of the video that meets it (``referents``). Words, by kind, in this order::

    the [size] [texture] [colour] <shape | object>[s] [moving <direction> <speed>]
        [that <pattern clause> [and <presence clause>]]

    size small, big; texture plain, striped, dotted; colour red, green, ...; shape circle, ...
    direction left, right, up, down; speed slowly, fast
    pattern   stays still | keeps moving ... | moves ... and stops (stops) | starts moving ...
    presence  enters the scene | leaves the scene

Direction and speed go inside the pattern clause when there is one ("that keeps moving left
fast"), else after the noun ("the red square moving left"). Plural nouns and verbs when an
expression refers to several objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rvos_core.world.scene import (
    COLOURS,
    DIRECTIONS,
    PATTERNS,
    PRESENCES,
    SHAPES,
    SIZES,
    SPEEDS,
    TEXTURES,
    Thing,
)

STATIC = ("size", "texture", "colour", "shape")
DYNAMIC = ("direction", "speed", "pattern", "presence")
KINDS = STATIC + DYNAMIC
MAX_KINDS = 4  # the longest constraint an expression states
SPEED_WORDS = {"slow": "slowly", "fast": "fast"}
Constraint = Mapping[str, str]


@dataclass(frozen=True)
class Sentence:
    """An expression: its ``text`` and the objects it refers to."""

    text: str
    targets: tuple[int, ...]


def describable(thing: Thing) -> dict[str, str]:
    """The attributes of ``thing`` words can name (a still object has no direction or speed; an
    object that stays in view says nothing about its presence)."""
    values = {kind: getattr(thing, kind) for kind in KINDS}
    return {k: v for k, v in values.items() if v is not None and v != "stays"}


def referents(constraint: Constraint, things: Sequence[Thing]) -> tuple[int, ...]:
    """Indices of the objects that meet every (kind, value) of ``constraint``."""
    return tuple(
        k
        for k, thing in enumerate(things)
        if all(getattr(thing, kind) == value for kind, value in constraint.items())
    )


def _noun(constraint: Constraint, plural: bool) -> str:
    noun = constraint.get("shape", "object")
    if not plural:
        return noun
    return f"{noun}es" if noun.endswith("s") else f"{noun}s"


def _verb(singular: str, plural: bool) -> str:
    """``singular`` ("stays", "moves"...) in the number of the subject."""
    return singular[:-1] if plural else singular


def _clauses(constraint: Constraint, plural: bool) -> tuple[str, list[str]]:
    """The participle after the noun ("moving left", or "") and the clauses after "that"."""
    how = " ".join(
        w for w in (constraint.get("direction"), SPEED_WORDS.get(constraint.get("speed", ""))) if w
    )
    pattern = constraint.get("pattern")
    clauses = []
    if pattern == "still":
        clauses.append(f"{_verb('stays', plural)} still")
    elif pattern == "moves":
        clauses.append(f"{_verb('keeps', plural)} moving {how}".strip())
    elif pattern == "stops":
        move = f"{_verb('moves', plural)} {how} and " if how else ""
        clauses.append(f"{move}{_verb('stops', plural)}")
    elif pattern == "starts":
        clauses.append(f"{_verb('starts', plural)} moving {how}".strip())
    if "presence" in constraint:
        clauses.append(f"{_verb(constraint['presence'], plural)} the scene")
    participle = f"moving {how}" if how and pattern is None else ""
    return participle, clauses


def phrase(constraint: Constraint, plural: bool = False) -> str:
    """The words of ``constraint`` (see the module docstring)."""
    words = ["the", *(constraint[k] for k in STATIC[:3] if k in constraint)]
    words.append(_noun(constraint, plural))
    participle, clauses = _clauses(constraint, plural)
    if participle:
        words.append(participle)
    if clauses:
        words.append("that " + " and ".join(clauses))
    return " ".join(words)


def sentence(constraint: Constraint, things: Sequence[Thing]) -> Sentence:
    targets = referents(constraint, things)
    return Sentence(phrase(constraint, plural=len(targets) > 1), targets)


def descriptions(
    k: int, things: Sequence[Thing], kinds: Sequence[str] = KINDS
) -> list[dict[str, str]]:
    """Every constraint over ``kinds`` (at most MAX_KINDS of them) that object k meets and no other
    object of ``things`` does, fewest kinds first."""
    values = describable(things[k])
    pool = [kind for kind in kinds if kind in values]
    found = []
    for count in range(1, MAX_KINDS + 1):
        for chosen in itertools.combinations(pool, count):
            constraint = {kind: values[kind] for kind in chosen}
            if referents(constraint, things) == (k,):
                found.append(constraint)
    return found


def _length(constraint: Constraint) -> tuple[int, bool]:
    """How long an expression is: its kinds besides the shape (the noun is free), then whether it
    says "object" instead of naming the shape."""
    return len(constraint) - ("shape" in constraint), "shape" not in constraint


def _pick(
    options: list[dict[str, str]], rng: np.random.Generator, avoid: Sequence[Constraint] = ()
) -> dict[str, str] | None:
    """One of the shortest ``options`` (``_length``) not in ``avoid`` (None when none is left)."""
    left = [o for o in options if o not in avoid]
    if not left:
        return None
    best = min(map(_length, left))
    shortest = [o for o in left if _length(o) == best]
    return shortest[int(rng.integers(len(shortest)))]


def _uses_motion(constraint: Constraint) -> bool:
    return any(kind in constraint for kind in DYNAMIC)


def object_sentences(
    k: int, things: Sequence[Thing], rng: np.random.Generator, count: int
) -> list[Sentence]:
    """``count`` (2 or 4) different expressions of object k alone, alternating between one of
    appearance only (where one singles it out) and one that names its motion."""
    options = descriptions(k, things)
    static = [o for o in options if not _uses_motion(o)]
    motion = [o for o in options if _uses_motion(o)]
    chosen: list[dict[str, str]] = []
    for n in range(count):
        preferred = static if n % 2 == 0 else motion
        pick = _pick(preferred, rng, chosen) or _pick(options, rng, chosen)
        if pick is None:
            raise ValueError(f"object {k} has fewer than {count} descriptions")
        chosen.append(pick)
    return [sentence(c, things) for c in chosen]


def image_sentence(
    k: int, things: Sequence[Thing], shown: Sequence[int], rng: np.random.Generator
) -> Sentence | None:
    """An expression of object k in a still image showing objects ``shown``: appearance only,
    unique among the shown objects; None when its appearance does not single it out."""
    seen = [things[i] for i in shown]
    pick = _pick(descriptions(shown.index(k), seen, STATIC), rng)
    if pick is None:
        return None
    return Sentence(phrase(pick), (k,))


def motion_sentences(
    things: Sequence[Thing], rng: np.random.Generator, count: int, no_target: bool
) -> list[Sentence]:
    """MeViS-style expressions: a motion constraint (one or two of direction, speed, pattern,
    presence, alone or with the shape or the colour) and every object that meets it, several
    objects first; ``count`` of them, plus one that no object meets when ``no_target``."""
    candidates: dict[str, Sentence] = {}
    for thing in things:
        values = describable(thing)
        dynamic = [kind for kind in DYNAMIC if kind in values]
        for n in (1, 2):
            for chosen in itertools.combinations(dynamic, n):
                for extra in ((), ("shape",), ("colour",)):
                    constraint = {kind: values[kind] for kind in (*chosen, *extra)}
                    found = sentence(constraint, things)
                    candidates.setdefault(found.text, found)
    ranked = sorted(candidates.values(), key=lambda s: s.text)
    several = [s for s in ranked if len(s.targets) > 1]
    single = [s for s in ranked if len(s.targets) == 1]
    chosen = _sample(several, rng, count // 2)
    chosen += _sample(single, rng, count - len(chosen))
    chosen += _sample([s for s in several if s not in chosen], rng, count - len(chosen))
    if no_target:
        chosen += _sample(_absent(things), rng, 1)
    return chosen


def _sample(items: list[Sentence], rng: np.random.Generator, count: int) -> list[Sentence]:
    """Up to ``count`` of ``items`` drawn without replacement, in their order."""
    if count <= 0 or not items:
        return []
    keep = rng.choice(len(items), size=min(count, len(items)), replace=False)
    return [items[i] for i in sorted(keep)]


def _absent(things: Sequence[Thing]) -> list[Sentence]:
    """Motion expressions no object meets: a direction nobody moves in, a presence nobody has."""
    moving = {t.direction for t in things}
    present = {t.presence for t in things}
    constraints = [{"direction": d} for d in DIRECTIONS if d not in moving]
    constraints += [{"presence": p} for p in PRESENCES[1:] if p not in present]
    return [Sentence(phrase(c), ()) for c in constraints]


def vocabulary_phrases() -> list[str]:
    """Phrases that hold every word the grammar can say, in both numbers (so that a tokenizer
    trained on a few videos' expressions also knows the words those videos never use)."""
    values = {
        "size": list(SIZES),
        "texture": TEXTURES,
        "colour": list(COLOURS),
        "shape": SHAPES,
        "direction": list(DIRECTIONS),
        "speed": list(SPEEDS),
        "pattern": PATTERNS,
        "presence": PRESENCES[1:],
    }
    constraints = [{kind: v} for kind, options in values.items() for v in options]
    constraints.append({"direction": "left", "pattern": "stops", "presence": "leaves"})
    return [phrase(c, plural) for c in constraints for plural in (False, True)]
