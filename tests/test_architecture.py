"""The package's shape as the README's Design section maps it: imports point one way down the data flow, with no
cycle; each package's lazy re-exports list exactly its modules' public names; no kind name outside the registry."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "detectlib"

# Bottom to top: a unit may import only units before it (and itself). A unit is a top-level module or package.
LAYERS = ["config", "labels", "files", "data", "models", "evaluation", "explain", "plots", "training", "widgets",
          "workflows", "exercises", "cli"]
COMMANDS = ["train", "train_clip_head", "evaluate", "infer", "gradcam_infer", "create_samples", "create_full_all",
            "embed", "synth", "wild", "clip_onnx", "bench", "gpu_check", "colab", "readme"]
PACKAGES = ["data", "models", "evaluation", "explain", "training", "workflows", "exercises"]


def _modules() -> dict[str, Path]:
    """``{"data.images": path, "data": path/__init__.py, "train": path, ...}`` (names without ``detectlib.``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "detectlib"] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The kit's modules ``name`` imports anywhere in its file (inside functions too: a lazy import is still a
    dependency), resolved to module names; ``from .x import f`` counts as importing module ``x``."""
    path = MODULES[name]
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1] if node.level > 1 else here
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").split(".")[0] == "detectlib":
                target = node.module.removeprefix("detectlib").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if sub in MODULES else target or "detectlib")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("detectlib.") for a in node.names if a.name.startswith("detectlib.")}
    return {m for m in found if m in MODULES and m != name}


def _unit(name: str) -> str:
    return name.split(".")[0]


def _rank(unit: str) -> int:
    return len(LAYERS) if unit in COMMANDS else LAYERS.index(unit)


def test_every_module_is_placed_on_the_map():
    units = {_unit(m) for m in MODULES if m != "detectlib"}
    assert units == set(LAYERS) | set(COMMANDS)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != "detectlib"))
def test_imports_point_down_the_data_flow(name):
    upward = sorted(t for t in _imports(name)
                    if _unit(t) != _unit(name) and t != "detectlib" and _rank(_unit(t)) >= _rank(_unit(name)))
    assert not upward, f"{name} imports {upward}, which sit above it on the README's map"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_there_is_no_import_cycle_between_modules():
    """Module by module, package ``__init__`` files aside (a package may load its own modules)."""
    graph = {m: {t for t in _imports(m) if MODULES[t].name != "__init__.py"} for m in MODULES
             if MODULES[m].name != "__init__.py"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_check_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _public(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            names += [e.id for e in target.elts] if isinstance(target, ast.Tuple) else [target.id]
    return [n for n in names if not n.startswith("_")]


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "exercises"])
def test_a_package_re_exports_exactly_the_public_names_of_its_modules(package):
    """``dl.<package>.<name>`` reaches every public name defined once in the package, and nothing else."""
    modules = sorted(p for p in (PACKAGE / package).glob("*.py") if p.name != "__init__.py")
    defined = [name for path in modules for name in _public(path)]
    unique = {name for name in defined if defined.count(name) == 1}
    pkg = importlib.import_module(f"detectlib.{package}")
    exported = set(pkg.__all__) - {p.stem for p in modules}
    assert exported == unique
    for name in sorted(unique):  # each resolves to the object its module defines
        module = next(p.stem for p in modules if name in _public(p))
        assert getattr(pkg, name) is getattr(importlib.import_module(f"detectlib.{package}.{module}"), name)


def test_no_module_outside_the_registry_tests_a_detector_kind_by_name():
    kinds = ('"convnext"', '"clip_head"', "'convnext'", "'clip_head'")
    allowed = {"models.classifier", "models.clip_head", "models.checkpoints", "training.convnext",
               "training.clip_head"}  # the kinds themselves, and the checkpoints they write and describe
    offenders = [name for name, path in MODULES.items() if name not in allowed
                 and any(f"kind == {k}" in path.read_text() or f"kind != {k}" in path.read_text() for k in kinds)]
    assert not offenders
