"""The shape of the house (docs/architecture.md): which package may import what, and no cycles.

Read from the source with ``ast`` (nothing is imported), every import statement counts, also one
inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # import name -> source folder
    "rvos_core": ROOT / "core" / "src" / "rvos_core",
    "rvos_nn": ROOT / "nn" / "src" / "rvos_nn",
    "rvos_eval": ROOT / "eval" / "src" / "rvos_eval",
    "rvos_fusion": ROOT / "fusion" / "src" / "rvos_fusion",
    "rvos_vos": ROOT / "vos" / "src" / "rvos_vos",
    "rvos_referformer": ROOT / "models" / "referformer" / "src" / "rvos_referformer",
    "rvos_mutr": ROOT / "models" / "mutr" / "src" / "rvos_mutr",
    "rvos_soc": ROOT / "models" / "soc" / "src" / "rvos_soc",
    "rvos_uninext": ROOT / "models" / "uninext" / "src" / "rvos_uninext",
    "rvos_sam3": ROOT / "models" / "sam3" / "src" / "rvos_sam3",
    "rvos_train": ROOT / "train" / "src" / "rvos_train",
    "rvos_report": ROOT / "report" / "src" / "rvos_report",
}
TORCH = {"torch", "transformers", "tokenizers", "safetensors", "timm", "torchvision"}
MODELS = {"rvos_referformer", "rvos_mutr", "rvos_soc", "rvos_uninext", "rvos_sam3"}
TORCH_FREE = {"rvos_core", "rvos_eval", "rvos_fusion", "rvos_report"}
# package -> the packages of ours it may import (besides itself)
OURS = {
    "rvos_core": set(),
    "rvos_eval": {"rvos_core"},
    "rvos_fusion": {"rvos_core"},
    "rvos_nn": {"rvos_core"},
    "rvos_vos": {"rvos_core", "rvos_nn"},
    **{m: {"rvos_core", "rvos_nn"} for m in MODELS},
    "rvos_mutr": {"rvos_core", "rvos_nn", "rvos_referformer"},  # MUTR extends ReferFormer's modules
    # finds the models through their ModelEntry; the propagators' task (its "propagation" extra)
    # trains rvos_vos networks and validates them with rvos_eval
    "rvos_train": {"rvos_core", "rvos_nn", "rvos_vos", "rvos_eval"},
    "rvos_report": {"rvos_core", "rvos_eval"},  # runs models as processes (make segment)
}


def forbidden(package: str, name: str) -> bool:
    """Whether ``package`` may not import module ``name``."""
    top = name.split(".")[0]
    if top in PACKAGES:
        return top != package and top not in OURS[package]
    return package in TORCH_FREE and top in TORCH


def modules(package: str) -> Iterator[tuple[str, Path]]:
    """(dotted module name, file) of every module of ``package``."""
    folder = PACKAGES[package]
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imports(path: Path, module: str) -> set[str]:
    """Dotted names imported by the file (relative imports resolved)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_every_package_exists() -> None:
    for name, folder in PACKAGES.items():
        assert (folder / "__init__.py").is_file(), name


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_point_the_right_way(package: str) -> None:
    wrong = []
    for module, path in modules(package):
        for name in imports(path, module):
            if forbidden(package, name):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def module_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name imported from a module counts as the module)."""
    known = {m: p for package in PACKAGES for m, p in modules(package)}
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set()
        for name in imports(path, module):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a package's __init__ importing its own modules excluded)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target.startswith(node + "."):
                continue  # a package re-exporting its own modules
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(module_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_ray_is_imported_by_the_ray_pool_only() -> None:
    """Ray is an optional extra (env/requirements-ray.txt): rvos_core.ray_pool alone imports it,
    and rvos_core.parallel imports that module only when EXECUTOR=ray."""
    users = {
        module
        for package in PACKAGES
        for module, path in modules(package)
        if any(name.split(".")[0] == "ray" for name in imports(path, module))
    }
    assert users == {"rvos_core.ray_pool"}
    check = "import sys, rvos_core.runner; "
    check += "sys.exit(bool({'ray', 'rvos_core.ray_pool'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0


def test_the_rules_catch_a_wrong_import() -> None:
    assert forbidden("rvos_fusion", "torch.nn") and forbidden("rvos_eval", "rvos_nn.infer")
    assert forbidden("rvos_core", "rvos_fusion.vote") and forbidden("rvos_nn", "rvos_soc.model")
    assert not forbidden("rvos_soc", "rvos_nn.layers") and not forbidden("rvos_core", "numpy")


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"p": {"p.x"}, "p.x": {"q"}, "q": set()}) is None


def exported(package: str) -> set[str]:
    """The names of ``__all__`` in the package's __init__.py."""
    tree = ast.parse((PACKAGES[package] / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return set()


@pytest.mark.parametrize("package", sorted(MODELS))
def test_model_packages_export_the_same_contract(package: str) -> None:
    """docs/architecture.md: every model package exports its entries, build, the checkpoint
    rules, the predictor factory, and one model, config, options and predictor class."""
    names = exported(package)
    assert {"ENTRIES", "CHECKPOINT_RULES", "build", "create_predictor"} <= names
    for suffix in ("Config", "Options", "Predictor"):
        assert [n for n in names if n.endswith(suffix) and n[0].isupper()], (package, suffix)
