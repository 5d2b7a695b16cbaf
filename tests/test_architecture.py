"""The package's shape as docs/design.md maps it: imports point one way down the data flow, with no
cycle; each package's lazy re-exports list exactly its modules' public names; no kind name outside the registry.

The analysis (``Kit``) reads a package tree's source, never imports it, so each rule is also run on a small fake
package planted in ``tmp_path`` with one violation, which it must catch. An import is any way a module reaches
another: ``import`` and ``from ... import`` statements anywhere in the file (inside functions too: a lazy import is
still a dependency), ``importlib.import_module`` with a literal name (absolute, or relative to ``__package__`` /
``__name__``), and attributes of a kit package bound to a name (``import detectlib as dl; dl.workflows.x``).
A name taken from a package (``from ..models import load_detector``, ``dl.models.load_detector``) counts as an
import of the module that defines it, read from the package's ``__init__`` (its ``lazy_loader`` lists and its
``from .x import name`` lines), so re-exports are edges like any other.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from functools import cached_property
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "detectlib"

# Bottom to top: a unit may import only units before it (and itself). A unit is a top-level module or package.
LAYERS = ["config", "labels", "files", "data", "models", "evaluation", "explain", "plots", "training", "widgets",
          "workflows", "exercises", "cli"]
COMMANDS = ["train", "train_clip_head", "evaluate", "infer", "gradcam_infer", "create_samples", "create_full_all",
            "embed", "synth", "wild", "clip_onnx", "bench", "gpu_check", "colab", "readme"]
PACKAGES = ["data", "models", "evaluation", "explain", "training", "workflows", "exercises"]
REGISTRY = "models"  # the unit whose modules define, register and dispatch on the detector kinds


def _is_import_module(node: ast.AST) -> bool:
    """``importlib.import_module(...)``, ``import_module(...)`` or ``__import__(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def _arg(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """``dl.models.load_detector`` -> ("dl", ["models", "load_detector"]); None when not rooted at a name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.insert(0, node.attr)
        node = node.value
    return (node.id, attrs) if isinstance(node, ast.Name) else None


class Kit:
    """The import graph of the package tree at ``root``, read from its source. Modules are named without the
    package's own name (``"data.images"``, ``"data"`` for ``data/__init__.py``); the top ``__init__`` is
    ``self.top`` (the folder's name)."""

    def __init__(self, root: Path):
        self.root = root
        self.top = root.name
        self.modules: dict[str, Path] = {}
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            self.modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts) or self.top] = path
        self._trees: dict[str, ast.Module] = {}
        self._exports: dict[str, dict[str, str]] = {}
        self._imports: dict[str, set[str]] = {}

    # -- names ---------------------------------------------------------------------------------------------------
    def tree(self, name: str) -> ast.Module:
        if name not in self._trees:
            self._trees[name] = ast.parse(self.modules[name].read_text(), str(self.modules[name]))
        return self._trees[name]

    def is_package(self, name: str) -> bool:
        return name in self.modules and self.modules[name].name == "__init__.py"

    def _parts(self, name: str) -> list[str]:
        return [] if name == self.top else name.split(".")

    def _name(self, parts: list[str]) -> str:
        return ".".join(parts) or self.top

    def _join(self, owner: str, attr: str) -> str:
        return self._name([*self._parts(owner), attr])

    def _package_of(self, name: str) -> list[str]:
        """The parts of ``__package__`` in module ``name``."""
        return self._parts(name) if self.is_package(name) else self._parts(name)[:-1]

    def _absolute(self, dotted: str) -> str | None:
        """``"detectlib.data.images"`` -> ``"data.images"``; None outside the kit."""
        if dotted == self.top or dotted.startswith(f"{self.top}."):
            return self._name(dotted.split(".")[1:])
        return None

    def _relative(self, base: list[str], level: int, module: str | None) -> str | None:
        """``from ..x import`` seen from package ``base`` (its parts) -> the target's name; None above the top."""
        if level - 1 > len(base):
            return None
        return self._name([*base[:len(base) - level + 1], *(module.split(".") if module else [])])

    def _literal_import(self, name: str, call: ast.Call) -> str | None:
        """The kit module ``import_module("<literal>", <package>)`` in module ``name`` loads; None when not one."""
        first = _arg(call, 0, "name")
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            return None
        target = first.value
        if not target.startswith("."):
            return self._absolute(target)
        package = _arg(call, 1, "package")
        if isinstance(package, ast.Name) and package.id == "__package__":
            base = self._package_of(name)
        elif isinstance(package, ast.Name) and package.id == "__name__":
            base = self._parts(name)
        elif isinstance(package, ast.Constant) and isinstance(package.value, str):
            absolute = self._absolute(package.value)
            if absolute is None:
                return None
            base = self._parts(absolute)
        else:
            return None
        level = len(target) - len(target.lstrip("."))
        return self._relative(base, level, target[level:] or None)

    # -- re-exports ----------------------------------------------------------------------------------------------
    def exports(self, package: str) -> dict[str, str]:
        """``{name: module}`` for each name the package's ``__init__`` re-exports: its ``lazy_loader.attach``
        ``submod_attrs`` lists and the names it imports with ``from ... import``."""
        if package in self._exports:
            return self._exports[package]
        self._exports[package] = found = {}  # guards a package whose __init__ imports from itself
        base = self._parts(package)
        for node in ast.walk(self.tree(package)):
            if isinstance(node, ast.Call) and any(k.arg == "submod_attrs" for k in node.keywords):
                attrs = next(k.value for k in node.keywords if k.arg == "submod_attrs")
                if not isinstance(attrs, ast.Dict):
                    continue
                for key, names in zip(attrs.keys, attrs.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(names, ast.List | ast.Tuple):
                        module = self._name([*base, *key.value.split(".")])
                        found.update({n.value: module for n in names.elts if isinstance(n, ast.Constant)})
        for node in ast.walk(self.tree(package)):
            if isinstance(node, ast.ImportFrom):
                target = self._from_target(package, node)
                for alias in node.names if target in self.modules else ():
                    if alias.name != "*":
                        found.setdefault(alias.asname or alias.name, self.resolve(target, alias.name) or target)
        return found

    def resolve(self, owner: str, attr: str) -> str | None:
        """The kit module ``owner.attr`` is, or the one defining the name ``attr`` re-exported by package
        ``owner``; None when neither (an attribute of a plain module, or a name the package defines itself)."""
        sub = self._join(owner, attr)
        if sub in self.modules:
            return sub
        if self.is_package(owner) and attr in self.exports(owner):
            module = self.exports(owner)[attr]
            if self.is_package(module) and module != owner:
                return self.resolve(module, attr) or module
            return module
        return None

    # -- imports -------------------------------------------------------------------------------------------------
    def _from_target(self, name: str, node: ast.ImportFrom) -> str | None:
        if node.level:
            return self._relative(self._package_of(name), node.level, node.module)
        return self._absolute(node.module or "")

    def imports(self, name: str) -> set[str]:
        """The kit modules module ``name`` imports, by any of the ways in the module docstring."""
        if name in self._imports:
            return self._imports[name]
        tree = self.tree(name)
        found: set[str] = set()
        bound: dict[str, str] = {}  # local name -> the kit package it holds
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (target := self._from_target(name, node)) is not None:
                for alias in node.names:
                    module = (self.resolve(target, alias.name) if alias.name != "*" else None) or target
                    found.add(module)
                    if self.is_package(module):
                        bound[alias.asname or alias.name] = module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if (module := self._absolute(alias.name)) is not None:
                        found.add(module)
                        bound[alias.asname or self.top] = module if alias.asname else self.top
            elif _is_import_module(node) and (module := self._literal_import(name, node)) is not None:
                found.add(module)
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                  and _is_import_module(node.value)
                  and (module := self._literal_import(name, node.value)) is not None):
                bound[node.targets[0].id] = module
        for node in ast.walk(tree):  # the attributes of a bound package: dl.workflows, dl.models.load_detector
            if isinstance(node, ast.Attribute) and (chain := _chain(node)) and chain[0] in bound:
                found.add(self._follow(bound[chain[0]], chain[1]))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id in bound
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                found.add(self._follow(bound[node.args[0].id], [node.args[1].value]))
        self._imports[name] = {m for m in found if m in self.modules and m != name}
        return self._imports[name]

    def _follow(self, module: str, attrs: list[str]) -> str:
        for attr in attrs:
            if not self.is_package(module) or (nxt := self.resolve(module, attr)) is None:
                break
            module = nxt
        return module

    # -- the rules -----------------------------------------------------------------------------------------------
    def unit(self, name: str) -> str:
        return name.split(".")[0]

    def upward(self, name: str) -> list[str]:
        """The modules ``name`` imports that sit on its level or above it on the map (its own unit aside)."""
        rank = {u: i for i, u in enumerate(LAYERS)} | {c: len(LAYERS) for c in COMMANDS}
        mine = rank[self.unit(name)]
        return sorted(t for t in self.imports(name)
                      if t != self.top and self.unit(t) != self.unit(name) and rank[self.unit(t)] >= mine)

    def graph(self) -> dict[str, set[str]]:
        """Module by module, package ``__init__`` files aside (a package may load its own modules); a name taken
        from a package is an edge to the module that defines it."""
        return {m: {t for t in self.imports(m) if not self.is_package(t)} for m in self.modules
                if not self.is_package(m)}

    @cached_property
    def kinds(self) -> set[str]:
        """The registered detector kinds: ``kind = "<name>"`` in each class the registry unit's ``@register``s."""
        found = set()
        for name in (m for m in self.modules if self.unit(m) == REGISTRY):
            for cls in (n for n in ast.walk(self.tree(name)) if isinstance(n, ast.ClassDef)):
                if not any(_chain_name(d) == "register" for d in cls.decorator_list):
                    continue
                for stmt in cls.body:
                    target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
                    value = getattr(stmt, "value", None)
                    if (isinstance(target, ast.Name) and target.id == "kind" and isinstance(value, ast.Constant)
                            and isinstance(value.value, str)):
                        found.add(value.value)
        return found

    def kind_tests(self, name: str) -> list[str]:
        """``line: code`` of each test of a value against a kind's name in module ``name``: a comparison (``==``,
        ``!=``, ``in``, ``not in``, ``is``, either side, a kind inside a literal tuple / list / set / dict keys
        counting) or a ``match`` case."""
        def named(node: ast.AST) -> bool:
            if isinstance(node, ast.Constant):
                return node.value in self.kinds
            elements = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", ())
            return isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and any(
                e is not None and named(e) for e in elements)

        source = self.modules[name].read_text()
        found = []
        for node in ast.walk(self.tree(name)):
            if isinstance(node, ast.Compare) and any(named(n) for n in [node.left, *node.comparators]):
                found.append(node)
            elif isinstance(node, ast.match_case) and any(
                    isinstance(p, ast.MatchValue) and named(p.value) for p in ast.walk(node.pattern)):
                found.append(node.pattern)
        return [f"{n.lineno}: {ast.get_source_segment(source, n)}" for n in found]


def _chain_name(node: ast.expr) -> str:
    """The last name of a decorator: ``register``, ``detector.register``, ``register(...)`` -> ``register``."""
    node = node.func if isinstance(node, ast.Call) else node
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
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


KIT = Kit(PACKAGE)
MODULES = KIT.modules


# -- the package -----------------------------------------------------------------------------------------------------
def test_every_module_is_placed_on_the_map():
    units = {KIT.unit(m) for m in MODULES if m != KIT.top}
    assert units == set(LAYERS) | set(COMMANDS)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != KIT.top))
def test_imports_point_down_the_data_flow(name):
    upward = KIT.upward(name)
    assert not upward, f"{name} imports {upward}, which sit above it on docs/design.md's map"


def test_there_is_no_import_cycle_between_modules():
    found = cycle(KIT.graph())
    assert found is None, " -> ".join(found)


def test_the_cycle_check_finds_a_planted_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


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
    """``dl.<package>.<name>`` reaches every public name defined once in the package, and nothing else; and the
    graph above reads the same re-exports from the source as Python finds."""
    modules = sorted(p for p in (PACKAGE / package).glob("*.py") if p.name != "__init__.py")
    defined = [name for path in modules for name in _public(path)]
    unique = {name for name in defined if defined.count(name) == 1}
    pkg = importlib.import_module(f"detectlib.{package}")
    exported = set(pkg.__all__) - {p.stem for p in modules}
    assert exported == unique
    for name in sorted(unique):  # each resolves to the object its module defines
        module = next(p.stem for p in modules if name in _public(p))
        assert getattr(pkg, name) is getattr(importlib.import_module(f"detectlib.{package}.{module}"), name)
        assert KIT.resolve(package, name) == f"{package}.{module}"


def test_the_kinds_read_from_the_source_are_the_registered_ones():
    from detectlib.models import DETECTORS

    assert KIT.kinds == set(DETECTORS)


def test_no_module_outside_the_registry_tests_a_detector_kind_by_name():
    offenders = {name: found for name in MODULES if KIT.unit(name) != REGISTRY and (found := KIT.kind_tests(name))}
    assert not offenders, f"ask the registry (detectlib.models.detector) instead: {offenders}"


# -- each rule catches a planted violation ---------------------------------------------------------------------------
FAKE = {
    "__init__.py": """
        import importlib
        from .config import SEED
        def __getattr__(name):
            return importlib.import_module(f".{name}", __name__)
        """,
    "config.py": "SEED = 0\n",
    "data/__init__.py": """
        import lazy_loader
        __getattr__, __dir__, __all__ = lazy_loader.attach(
            __name__, submodules=["images", "layout"],
            submod_attrs={"images": ["load_image"], "layout": ["list_folder"]})
        """,
    "data/images.py": "def load_image(path):\n    return path\n",
    "data/layout.py": """
        from .images import load_image
        def list_folder(folder):
            return [load_image(folder)]
        """,
    "models/__init__.py": "from .detector import DETECTORS, load, register\nfrom . import convnext\n",
    "models/detector.py": """
        DETECTORS = {}
        def register(cls):
            DETECTORS[cls.kind] = cls
            return cls
        def load(ckpt):
            return DETECTORS[ckpt["kind"]]
        """,
    "models/convnext.py": """
        from .detector import register
        @register
        class Convnext:
            kind = "convnext"
        def describe(ckpt):
            return "a classifier" if ckpt["kind"] == "convnext" else "another"
        """,
    "workflows/__init__.py": """
        import lazy_loader
        __getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={"run": ["run_all"]})
        """,
    "workflows/run.py": """
        import detectlib as dl
        from ..data import list_folder
        from ..models import load
        def run_all(folder):
            ckpt = {"kind": "convnext", "name": "convnext"}
            return load(ckpt), list_folder(folder), dl.data.load_image(folder)
        """,
}


def _plant(tmp_path: Path, changes: dict[str, str] | None = None) -> Kit:
    """The fake package above, with ``changes`` (``{"data/images.py": source}``), read by a ``Kit``."""
    root = tmp_path / "detectlib"
    for rel, source in (FAKE | (changes or {})).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(source))
    return Kit(root)


def test_the_fake_package_breaks_no_rule(tmp_path):
    kit = _plant(tmp_path)
    assert kit.imports("workflows.run") == {"detectlib", "data", "data.layout", "data.images", "models.detector"}
    assert not [m for m in kit.modules if m != kit.top and kit.upward(m)]
    assert cycle(kit.graph()) is None
    assert kit.kinds == {"convnext"}
    assert not [m for m in kit.modules if kit.unit(m) != REGISTRY and kit.kind_tests(m)]


IMAGES = "def load_image(path):\n    {}\n    return path\n"


@pytest.mark.parametrize("line", [
    'importlib.import_module("detectlib.workflows.run")',
    'import_module("detectlib.workflows")',
    'importlib.import_module("..workflows.run", __package__)',
    'importlib.import_module("..workflows", package=__package__)',
    'importlib.import_module(".workflows.run", "detectlib")',
    '__import__("detectlib.workflows.run")',
    'run = importlib.import_module("detectlib.workflows"); run.run_all(path)',
], ids=["absolute", "from-importlib", "relative-package", "package-keyword", "relative-literal", "__import__",
        "bound"])
def test_an_upward_import_module_is_caught(tmp_path, line):
    kit = _plant(tmp_path, {"data/images.py": f"import importlib\nfrom importlib import import_module\n"
                                              f"{IMAGES.format(line)}"})
    assert kit.upward("data.images") and all(kit.unit(t) == "workflows" for t in kit.upward("data.images"))


def test_import_module_relative_to_a_module_name_resolves_as_python_does(tmp_path):
    """``import_module("..layout", "detectlib.data.images")`` is ``detectlib.data.layout``."""
    line = 'import importlib; importlib.import_module("..layout", __name__)'
    kit = _plant(tmp_path, {"data/images.py": IMAGES.format(line)})
    assert kit.imports("data.images") == {"data.layout"}


@pytest.mark.parametrize("source", [
    "import detectlib as dl\n" + IMAGES.format("dl.workflows.run_all(path)"),
    "import detectlib\n" + IMAGES.format("detectlib.run_all = detectlib.workflows.run_all"),
    "import detectlib.config\n" + IMAGES.format("detectlib.workflows.run_all(path)"),
    "from detectlib import workflows\n" + IMAGES.format("workflows.run_all(path)"),
    "from .. import workflows as w\n" + IMAGES.format("w.run_all(path)"),
    "import detectlib as dl\n" + IMAGES.format('getattr(dl, "workflows").run_all(path)'),
    "from ..workflows import run_all\n" + IMAGES.format("run_all(path)"),
], ids=["dl.workflows", "detectlib.workflows", "import-detectlib.config", "from-detectlib-import",
        "from-..-import-as", "getattr", "re-exported-name"])
def test_an_upward_import_through_the_top_package_or_a_re_export_is_caught(tmp_path, source):
    kit = _plant(tmp_path, {"data/images.py": source})
    assert {kit.unit(t) for t in kit.upward("data.images")} == {"workflows"}


@pytest.mark.parametrize("source", [
    "from ..data import list_folder\n" + IMAGES.format("list_folder(path)"),
    "from . import list_folder\n" + IMAGES.format("list_folder(path)"),
    "import detectlib as dl\n" + IMAGES.format("dl.data.list_folder(path)"),
    "from .. import data\n" + IMAGES.format("data.list_folder(path)"),
    "import importlib\n" + IMAGES.format('importlib.import_module(".layout", __package__)'),
], ids=["from-..data", "from-.", "dl.data", "package-bound", "import_module"])
def test_a_cycle_through_a_re_exported_name_is_caught(tmp_path, source):
    kit = _plant(tmp_path, {"data/images.py": source})
    assert cycle(kit.graph()) in (["data.images", "data.layout", "data.images"],
                                  ["data.layout", "data.images", "data.layout"])


@pytest.mark.parametrize("test", [
    'ckpt["kind"] == "convnext"',
    '"convnext" == kind',
    'kind != "convnext"',
    'kind in ("convnext", "other")',
    'kind not in {"convnext"}',
    'kind in ["convnext"]',
    'kind is "convnext"',
])
def test_a_kind_compared_outside_the_registry_is_caught(tmp_path, test):
    source = f"def pick(ckpt, kind):\n    return 1 if {test} else 0\n"
    kit = _plant(tmp_path, {"workflows/run.py": source})
    assert kit.kind_tests("workflows.run") == [f"2: {test}"]


def test_a_kind_matched_outside_the_registry_is_caught(tmp_path):
    source = 'def pick(ckpt):\n    match ckpt["kind"]:\n        case "other" | "convnext":\n            return 1\n'
    kit = _plant(tmp_path, {"workflows/run.py": source})
    assert kit.kind_tests("workflows.run") == ['3: "other" | "convnext"']
    assert kit.kind_tests("models.convnext")  # the registry may; the rule skips its unit
