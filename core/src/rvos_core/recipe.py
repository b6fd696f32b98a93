"""Recipes as data: the node graph of an ensemble, defined once and used by every consumer.

A recipe (``rvos_core/recipes/<name>.toml``, or any ``.toml`` file given by path) lists nodes, each a
run folder ``$(WORK)/<split>/<node>/`` made by one producer from its inputs:

* a model run: ``model = "<registered model>"`` (``options``, ``environment``), no inputs;
* a propagation: ``propagator = "aot"``, one input, named ``<input>+<propagator>``;
* a vote: ``rule = "<rule>"``, two or more inputs, the rule's settings from ``[rules.<rule>]``, one
  table per expression grouping ("pairs" for Ref-YouTube-VOS, "none" for MeViS and Ref-DAVIS);

plus the node whose run becomes the submission. Every node has a ``stage`` (a Make target that
builds the stage's nodes). Make reads a recipe through ``python -m rvos_core.recipe makefile``
(rules generated into ``build/``), the demo, the benchmarks and the tests through ``load_recipe``.
This module needs only the standard library, so Make can run it with any Python 3.11.

``python -m rvos_core.recipe list | show NAME | makefile NAME`` (see docs/recipes.md).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rvos_core.command import Parser, run_command
from rvos_core.errors import InputError

RECIPES = Path(__file__).resolve().parent / "recipes"
DEFAULT = "lsvos2023"
GROUPINGS = ("pairs", "none")
Kind = Literal["model", "propagation", "vote"]


@dataclass(frozen=True)
class VoteRule:
    """A vote rule: per grouping ("pairs" / "none") the vote settings (rvos_fusion.VoteConfig fields).

    Attributes:
        compat_switch: ``make ... COMPAT=1`` adds ``--compat-unpaired-sigmoid`` to its votes.
    """

    name: str
    settings: Mapping[str, Mapping[str, Any]]
    compat_switch: bool = False

    def for_grouping(self, grouping: str) -> dict[str, Any]:
        """The settings of this rule for a dataset grouping, with ``grouping`` itself included."""
        return {"grouping": grouping, **self.settings[grouping]}


@dataclass(frozen=True)
class Node:
    """One run folder of the recipe and how it is made (see the module docstring)."""

    name: str
    stage: str
    kind: Kind
    producer: str
    inputs: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    environment: str = "main"


@dataclass(frozen=True)
class Recipe:
    """A node graph in dependency order; ``submission`` names the node that is submitted."""

    name: str
    source: Path
    description: str
    nodes: tuple[Node, ...]
    rules: Mapping[str, VoteRule]
    submission: str

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def of_kind(self, kind: Kind) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def stages(self) -> dict[str, list[str]]:
        """Stage -> its nodes, both in the order of the file."""
        table: dict[str, list[str]] = {}
        for node in self.nodes:
            table.setdefault(node.stage, []).append(node.name)
        return table

    def propagators(self) -> list[str]:
        return sorted({n.producer for n in self.of_kind("propagation")})

    def propagated_with(self, node: Node) -> list[Node]:
        """The other propagations of ``node``'s stage by its propagator (run together with it)."""
        return [
            n
            for n in self.of_kind("propagation")
            if n.stage == node.stage and n.producer == node.producer and n is not node
        ]


def recipe_names() -> list[str]:
    """The recipes shipped with the project."""
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def recipe_path(name: str) -> Path:
    """A shipped recipe's file, or ``name`` itself when it is a path to a .toml file."""
    if name.endswith(".toml"):
        return Path(name)
    path = RECIPES / f"{name}.toml"
    if not path.is_file():
        raise InputError(path, f"no recipe {name!r}; shipped: {', '.join(recipe_names())}")
    return path


def load_recipe(name: str = DEFAULT) -> Recipe:
    """Read and check a recipe (a shipped name or a .toml path); errors name the file."""
    path = recipe_path(name)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "recipe file is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    return _build(path, data)


def _build(path: Path, data: Mapping[str, Any]) -> Recipe:
    rules = {name: _rule(path, name, body) for name, body in _table(path, data, "rules").items()}
    entries = data.get("nodes")
    if not isinstance(entries, list) or not entries:
        raise InputError(path, "a recipe needs a non-empty [[nodes]] list")
    nodes = tuple(_node(path, entry, rules) for entry in entries)
    recipe = Recipe(
        name=path.stem,
        source=path,
        description=str(data.get("description", "")),
        nodes=nodes,
        rules=rules,
        submission=str(data.get("submission", "")),
    )
    _check_graph(recipe)
    return recipe


def _table(path: Path, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise InputError(path, f"{key} must be a table")
    return value


def _rule(path: Path, name: str, body: Any) -> VoteRule:
    if not isinstance(body, Mapping):
        raise InputError(path, f"rules.{name} must be a table")
    settings = {g: body[g] for g in GROUPINGS if g in body}
    unknown = set(body) - {*GROUPINGS, "compat_switch"}
    if unknown or set(settings) != set(GROUPINGS):
        raise InputError(
            path,
            f"rules.{name}: needs tables {' and '.join(GROUPINGS)} (and optionally "
            f"compat_switch); got {sorted(body)}",
        )
    for grouping, table in settings.items():
        if not isinstance(table, Mapping) or "grouping" in table:
            raise InputError(path, f"rules.{name}.{grouping} must be a table of vote settings")
    return VoteRule(name, settings, bool(body.get("compat_switch", False)))


_PRODUCER_KEYS: dict[str, Kind] = {"model": "model", "propagator": "propagation", "rule": "vote"}
_NODE_KEYS = {"name", "stage", "inputs", "options", "environment", *_PRODUCER_KEYS}


def _node(path: Path, entry: Any, rules: Mapping[str, VoteRule]) -> Node:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise InputError(path, f"every node needs a name: {entry!r:.80}")
    name = entry["name"]
    where = f"node {name!r}"
    unknown = sorted(set(entry) - _NODE_KEYS)
    producers = [k for k in _PRODUCER_KEYS if k in entry]
    if unknown or len(producers) != 1 or not isinstance(entry.get("stage"), str):
        raise InputError(
            path,
            f"{where}: needs a stage and exactly one of model, propagator, rule"
            + (f"; unknown keys {unknown}" if unknown else ""),
        )
    kind = _PRODUCER_KEYS[producers[0]]
    node = Node(
        name=name,
        stage=entry["stage"],
        kind=kind,
        producer=str(entry[producers[0]]),
        inputs=tuple(str(i) for i in entry.get("inputs", ())),
        options={str(k): str(v) for k, v in entry.get("options", {}).items()},
        environment=str(entry.get("environment", "main")),
    )
    problem = _node_problem(node, rules)
    if problem:
        raise InputError(path, f"{where}: {problem}")
    return node


def _node_problem(node: Node, rules: Mapping[str, VoteRule]) -> str | None:
    if not all(c.isalnum() or c in "_+-." for c in node.name):
        return "names may hold letters, digits and _ + - ."
    if node.kind == "model" and node.inputs:
        return "a model run has no inputs"
    if node.kind == "propagation" and (
        len(node.inputs) != 1 or node.name != f"{node.inputs[0]}+{node.producer}"
    ):
        return "a propagation has one input and is named <input>+<propagator>"
    if node.kind == "vote" and (len(node.inputs) < 2 or node.producer not in rules):
        return f"a vote needs two or more inputs and a rule of [rules] ({', '.join(rules)})"
    if node.kind != "model" and (node.options or node.environment != "main"):
        return "options and environment belong to model runs"
    return None


def _check_graph(recipe: Recipe) -> None:
    """Unique names, inputs defined before use (so the file order is a build order), a submission."""
    seen: set[str] = set()
    for node in recipe.nodes:
        if node.name in seen:
            raise InputError(recipe.source, f"node {node.name!r} is defined twice")
        missing = [i for i in node.inputs if i not in seen]
        if missing:
            raise InputError(
                recipe.source,
                f"node {node.name!r}: inputs {missing} are not defined above it",
            )
        seen.add(node.name)
    if recipe.submission not in seen:
        raise InputError(
            recipe.source, f"submission = {recipe.submission!r} is not a node of the recipe"
        )


# ---------------------------------------------------------------------------------------------
# What consumers print: the graph (README, `make recipe`) and the Make rules.


def describe(recipe: Recipe) -> str:
    """The node graph, one line per stage and node, as the README shows it."""
    lines = [f"recipe {recipe.name}: {recipe.description}"]
    for stage, names in recipe.stages().items():
        for name in names:
            lines.append(f"  {stage:<11} {name:<24} = {_producer_text(recipe, recipe.node(name))}")
    lines.append(f"  {'submission':<11} {recipe.submission} -> submission.zip")
    return "\n".join(lines)


def _producer_text(recipe: Recipe, node: Node) -> str:
    if node.kind == "model":
        options = "".join(f", {k}={v}" for k, v in node.options.items())
        return f"model {node.producer}{options}"
    inputs = ", ".join(node.inputs)
    if node.kind == "propagation":
        return f"{node.producer}({inputs})"
    rule = recipe.rules[node.producer]
    pairs = ", ".join(f"{k}={v}" for k, v in rule.settings["pairs"].items())
    return f"vote {node.producer}({inputs}; pairs: {pairs})"


def makefile(recipe: Recipe) -> str:
    """Make rules of ``recipe`` (see the Makefile for the variables they use)."""
    lines = [
        f"# Generated by rvos_core.recipe from {recipe.source.name}: do not edit.",
        f"RECIPE_STAGES := {' '.join(recipe.stages())}",
        f"RECIPE_SUBMISSION := {recipe.submission}",
        f"RECIPE_PROPAGATORS := {' '.join(recipe.propagators())}",
        "",
    ]
    for stage, names in recipe.stages().items():
        nodes = " ".join(f"$(W)/{n}/run.json" for n in names)
        lines += [f"{stage}: {nodes} ## recipe stage: {' '.join(names)}", f".PHONY: {stage}"]
    lines.append("")
    for node in recipe.nodes:
        lines += _node_rule(recipe, node)
    for propagator in recipe.propagators():
        lines += _propagation_rules(propagator)
    return "\n".join(lines) + "\n"


def _node_rule(recipe: Recipe, node: Node) -> list[str]:
    target = f"$(W)/{node.name}/run.json"
    if node.kind == "model":
        variable = f"{node.producer.upper()}_OPTS"
        options = " ".join(f"--option {k}={v}" for k, v in node.options.items())
        alias = f"infer-{node.producer.replace('_', '-')}"
        return [
            f"{variable} ?= {options}".rstrip(),
            f"{target}:",
            "\t$(CHECK_DATA)",
            f"\t$(INFER_{node.environment}) {node.producer} --out $(@D) $(RUN_OPTS) "
            f"$(DEVICE_OPTS) $({variable})",
            f"{alias}: {target} ## model run {node.producer} -> {node.name}",
            f".PHONY: {alias}",
            "",
        ]
    if node.kind == "propagation":
        return _joint_rule(recipe, node)
    compat = (
        " $(if $(COMPAT),--compat-unpaired-sigmoid)"
        if recipe.rules[node.producer].compat_switch
        else ""
    )
    inputs = " ".join(f"$(W)/{i}/run.json" for i in node.inputs)
    return [
        f"{target}: {inputs}",
        f"\t$(FUSION) vote --recipe $(RECIPE) --rule {node.producer}{compat} $(RUN_OPTS) "
        "--out $(@D) $(^D)",
        "",
    ]


def _propagate_line(propagator: str, others: str = "") -> str:
    """The recipe line of a propagation of $(<D) into $(@D) (and of ``others`` with it)."""
    return (
        f"\t$(PROPAGATE) {propagator} --run $(<D) --out $(@D) {others}$(RUN_OPTS) $(DEVICE_OPTS) "
        "$(PROPAGATE_OPTS)"
    )


def _joint_rule(recipe: Recipe, node: Node) -> list[str]:
    """A propagation with others in its stage by its propagator: its own rule, whose command also
    propagates those of the others that Make would rebuild now (the Makefile's JOINT_PAIRS); none
    (the pattern rule of its propagator) when it is alone."""
    others = " ".join(n.inputs[0] for n in recipe.propagated_with(node))
    if not others:
        return []
    joint = f"$(call JOINT_PAIRS,{node.producer},{others}) "
    return [
        f"$(W)/{node.name}/run.json: $(W)/{node.inputs[0]}/run.json",
        _propagate_line(node.producer, joint),
        "",
    ]


def _propagation_rules(propagator: str) -> list[str]:
    return [
        f"$(W)/%+{propagator}/run.json: $(W)/%/run.json",
        _propagate_line(propagator),
        f"propagate-{propagator}: ## RUN=<node>: propagate with {propagator} -> <node>+{propagator}",
        '\t@test -n "$(RUN)" || { echo "usage: make '
        + f'propagate-{propagator} RUN=<node under $(W)>" >&2; exit 2; }}',
        f"\t$(MAKE) $(SUBMAKE_ARGS) $(W)/$(RUN)+{propagator}/run.json",
        f".PHONY: propagate-{propagator}",
        "",
    ]


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python -m rvos_core.recipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped recipes")
    for command in ("show", "makefile"):
        sub.add_parser(command).add_argument("recipe", help="a shipped name or a .toml path")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in recipe_names():
            print(f"{name:<16} {load_recipe(name).description}")
        return 0
    recipe = load_recipe(args.recipe)
    print((describe(recipe) if args.command == "show" else makefile(recipe)).rstrip("\n"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
