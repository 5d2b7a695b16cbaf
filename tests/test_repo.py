"""Repository conventions a reader relies on: stripped notebooks, one import line, two commands, one package list."""

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_the_lessons_and_the_appendix_exist():
    assert [p.stem for p in LESSONS] == [
        "01_build_dataset", "02_train_convnext", "03_train_clip_head", "04_measuring_a_detector", "05_generalisation",
        "06_gradcam_explorer", "07_appendix_under_the_hood",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_stripped_with_the_python3_kernel(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lessons_open_with_goals_import_detectlib_once_and_end_with_try_this(path):
    cells = _cells(path)
    assert "What you will learn" in _source(cells[0])
    code = [_source(c) for c in cells if c["cell_type"] == "code"]
    imports = [line for src in code for line in src.splitlines() if re.match(r"\s*(import|from) detectlib", line)]
    assert imports == ["import detectlib as dl"], f"{path.name}: one import line, got {imports}"
    assert "Try this" in _source(cells[-1])


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lessons_end_with_takeaways_read_from_the_run_then_recap_questions(path):
    """The last three cells: a "Takeaways" heading, a code cell that prints them from the run's own variables (so no
    number is typed in), and the recap questions with "Try this"."""
    *_, heading, takeaways, recap = _cells(path)
    assert heading["cell_type"] == "markdown" and "## Takeaways" in _source(heading)
    assert takeaways["cell_type"] == "code"
    lines = [line for line in _source(takeaways).splitlines() if line.lstrip().startswith("print(")]
    assert 3 <= len(lines) <= 6 and sum("{" in line for line in lines) >= 3, path.name
    assert "Recap" in _source(recap) and "Try this" in _source(recap)


def _pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = project["dependencies"] + extras["demo"] + extras["lab"]
    return {re.split(r"[<>=\[; ]", n)[0].lower() for n in names}


def _environment_packages() -> set[str]:
    conda_to_pip = {"pytorch": "torch", "lazy_loader": "lazy-loader"}
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"\s+- ([A-Za-z0-9_.-]+)", line)
        if m and m.group(1) not in {"python", "pip", "-e"}:
            names.add(conda_to_pip.get(m.group(1).lower(), m.group(1).lower()))
    return names


def test_environment_yml_and_pyproject_list_the_same_packages():
    assert _environment_packages() == _pyproject_packages()


def test_torch_is_pinned_only_in_the_constraints_file():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch" in deps and "torchvision" in deps  # bare names: users and Colab keep their torch
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==", pins, re.M) and re.search(r"^torchvision==", pins, re.M)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_colab_badge_to_itself_and_a_guarded_colab_setup(path):
    cells = _cells(path)
    rel = path.relative_to(ROOT).as_posix()
    badges = re.findall(r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/(\S+?)\)", _source(cells[0]))
    assert badges == [rel]
    setup = [_source(c) for c in cells if c["cell_type"] == "code" and _source(c).startswith("# Colab set-up")]
    assert len(setup) == 1
    # runs only on Colab (detected by its module or its environment, not by a folder), installs the extras the
    # notebook imports, never reinstalls torch nor upgrades ipywidgets, never switches the profile, asks before
    # mounting Drive
    assert 'IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ' in setup[0]
    assert "if IN_COLAB and any(importlib.util.find_spec(module) is None for module in NEEDS):" in setup[0]
    extras = "demo,lab" if "06_" in path.name else "demo"
    assert f'f"detectlib[{extras}] @ {{KIT}}"' in setup[0] and "MOUNT_DRIVE = False" in setup[0]
    assert not re.search(r"install[^\n]*(torch|ipywidgets|--upgrade|-U\b)", setup[0])
    assert "DETECTLIB_PROFILE" not in setup[0] and "/content\")" not in setup[0].split("drive.mount")[0]
