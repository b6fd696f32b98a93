"""rvos_core.recipe: recipes as data, checked on load, printed for README and Make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rvos_core.errors import InputError
from rvos_core.recipe import RECIPES, describe, load_recipe, makefile, recipe_names

ROOT = Path(__file__).resolve().parents[2]
VALID = """
submission = "v"
[rules.r]
pairs = { min_votes = 2, unpaired = "reference" }
none = { min_votes = 1 }
[[nodes]]
name = "a"
stage = "models"
model = "m1"
[[nodes]]
name = "b"
stage = "models"
model = "m2"
options = { size = "360" }
[[nodes]]
name = "a+aot"
stage = "propagated"
propagator = "aot"
inputs = ["a"]
[[nodes]]
name = "v"
stage = "votes"
rule = "r"
inputs = ["a+aot", "b"]
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return str(path)


def test_every_shipped_recipe_loads_and_its_inputs_come_first() -> None:
    assert "lsvos2023" in recipe_names()
    for name in recipe_names():
        recipe = load_recipe(name)
        seen: set[str] = set()
        for node in recipe.nodes:
            assert set(node.inputs) <= seen
            seen.add(node.name)
        assert recipe.submission in seen


def test_a_user_recipe_is_read_by_path(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, VALID))
    assert [n.name for n in recipe.of_kind("model")] == ["a", "b"]
    assert recipe.stages() == {"models": ["a", "b"], "propagated": ["a+aot"], "votes": ["v"]}
    assert recipe.rules["r"].for_grouping("none") == {"grouping": "none", "min_votes": 1}
    assert recipe.node("b").options == {"size": "360"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('inputs = ["a"]', 'inputs = ["b"]'), "named <input>\\+<propagator>"),
        (('inputs = ["a+aot", "b"]', 'inputs = ["b", "zz"]'), "not defined above it"),
        (('rule = "r"', 'rule = "nope"'), "needs two or more inputs and a rule"),
        (('model = "m1"', 'model = "m1"\npropagator = "aot"'), "exactly one of"),
        (('submission = "v"', 'submission = "w"'), "not a node of the recipe"),
        (("none = { min_votes = 1 }", ""), "needs tables pairs and none"),
        (('name = "b"', 'name = "a"'), "defined twice"),
        (
            ('stage = "models"\nmodel = "m1"', 'stage = "models"\nmodel = "m1"\ncolour = 1'),
            "unknown",
        ),
        (("[[nodes]]", "[[nodes"), "not valid TOML"),
    ],
)
def test_bad_recipes_name_the_file_and_problem(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    path = write(tmp_path, VALID.replace(*change, 1))
    with pytest.raises(InputError, match=problem) as info:
        load_recipe(path)
    assert info.value.path == Path(path)


def test_unknown_recipe_lists_the_shipped_ones() -> None:
    with pytest.raises(InputError, match="lsvos2023"):
        load_recipe("nope")


def test_makefile_has_one_rule_per_model_and_vote_and_a_pattern_per_propagator(
    tmp_path: Path,
) -> None:
    text = makefile(load_recipe(write(tmp_path, VALID)))
    assert "$(W)/a/run.json:\n" in text
    assert "M2_OPTS ?= --option size=360" in text
    assert "$(W)/v/run.json: $(W)/a+aot/run.json $(W)/b/run.json\n" in text
    assert "--recipe $(RECIPE) --rule r " in text and "COMPAT" not in text
    assert "$(W)/%+aot/run.json: $(W)/%/run.json" in text
    assert "$(W)/a+aot/run.json:" not in text
    assert "votes: $(W)/v/run.json" in text


def test_a_stages_propagations_by_one_propagator_get_joint_rules(tmp_path: Path) -> None:
    """b+aot shares stage and propagator with a+aot (each rule names the other's input);
    b+deaot and c+aot (another stage) are alone: their propagator's pattern rule makes them."""
    more = "".join(
        f'[[nodes]]\nname = "{i}+{p}"\nstage = "{stage}"\npropagator = "{p}"\ninputs = ["{i}"]\n'
        for i, p, stage in [
            ("b", "aot", "propagated"),
            ("b", "deaot", "propagated"),
            ("v", "aot", "late"),
        ]
    )
    recipe = load_recipe(write(tmp_path, VALID + more))
    assert [n.name for n in recipe.propagated_with(recipe.node("a+aot"))] == ["b+aot"]
    assert recipe.propagated_with(recipe.node("b+deaot")) == []
    text = makefile(recipe)
    for node, other in (("a", "b"), ("b", "a")):
        assert (
            f"$(W)/{node}+aot/run.json: $(W)/{node}/run.json\n\t$(PROPAGATE) aot --run $(<D) "
            f"--out $(@D) $(call JOINT_PAIRS,aot,{other}) $(RUN_OPTS)"
        ) in text
    assert "$(W)/b+deaot/run.json:" not in text and "$(W)/v+aot/run.json:" not in text


def test_the_cli_needs_only_the_standard_library(tmp_path: Path) -> None:
    """Make runs it with the system Python before any environment exists: -S -I, core/src only."""
    env = {"PYTHONPATH": str(ROOT / "core" / "src")}
    shown = subprocess.run(
        [sys.executable, "-S", "-m", "rvos_core.recipe", "show", "lsvos2023"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip("\n") == describe(load_recipe("lsvos2023"))
    bad = subprocess.run(
        [sys.executable, "-S", "-m", "rvos_core.recipe", "show", write(tmp_path, "x = [")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (
        bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    )


def test_readme_shows_the_default_recipe() -> None:
    """The README's recipe block is the output of `python -m rvos_core.recipe show lsvos2023`."""
    assert describe(load_recipe("lsvos2023")) in (ROOT / "README.md").read_text()
    assert (RECIPES / "lsvos2023.toml").is_file()
