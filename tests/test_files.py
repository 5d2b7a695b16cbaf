"""``files``: the staged, atomic, resumable folder build every builder uses, and the cross-filesystem move."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from detectlib import files

SETTINGS = {"builder": "test", "seed": 0}


def _fill(text: str = "new", calls: list | None = None):
    def fill(staging: Path) -> dict:
        if calls is not None:
            calls.append(staging)
        (staging / "sub").mkdir()
        files.atomic_write(staging / "sub" / "a.txt", lambda tmp: tmp.write_text(text))
        return {"count": 1}

    return fill


def _has_a(folder: Path, record: dict) -> bool:
    return len(list((folder / "sub").iterdir())) == record["count"]


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _build(out: Path, settings: dict | None = SETTINGS, fill=None, **kwargs) -> bool:
    return files.build_folder(out, settings, fill or _fill(), complete=_has_a if settings else None, **kwargs)


def test_a_build_writes_the_files_and_the_marker_and_leaves_no_staging(tmp_path):
    out = tmp_path / "deep" / "out"
    assert _build(out) is True
    assert _tree(out)["sub/a.txt"] == "new"
    assert json.loads((out / files.BUILD_MARKER).read_text()) == {"settings": SETTINGS, "count": 1}
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    assert files.is_built(out, SETTINGS, complete=_has_a)


def test_a_complete_build_with_the_same_settings_is_skipped(tmp_path):
    out, calls = tmp_path / "out", []
    _build(out)
    stamp = (out / files.BUILD_MARKER).stat().st_mtime_ns
    assert _build(out, fill=_fill("again", calls)) is False
    assert calls == [] and _tree(out)["sub/a.txt"] == "new"
    assert (out / files.BUILD_MARKER).stat().st_mtime_ns == stamp


def test_new_settings_a_missing_file_or_force_rebuild(tmp_path):
    out = tmp_path / "out"
    _build(out)
    assert _build(out, {**SETTINGS, "seed": 1}, _fill("seed 1")) is True
    assert _tree(out)["sub/a.txt"] == "seed 1"
    assert json.loads((out / files.BUILD_MARKER).read_text())["settings"] == {**SETTINGS, "seed": 1}
    (out / "sub" / "a.txt").unlink()  # the marker is there but a file it counts is not: not complete
    assert _build(out, {**SETTINGS, "seed": 1}, _fill("repaired")) is True
    assert _tree(out)["sub/a.txt"] == "repaired"
    assert _build(out, {**SETTINGS, "seed": 1}, _fill("forced"), force=True) is True
    assert _tree(out)["sub/a.txt"] == "forced"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_marker_is_written_last_and_the_settings_can_sit_at_its_top_level(tmp_path, monkeypatch):
    written, real = [], files.atomic_write

    def spy(path, fill):
        written.append(Path(path).name)
        return real(path, fill)

    def fill(staging):
        assert not (staging / "provenance.json").exists()
        return _fill()(staging)

    monkeypatch.setattr(files, "atomic_write", spy)
    out = tmp_path / "out"
    files.build_folder(out, SETTINGS, fill, marker="provenance.json", settings_key=None)
    assert written == ["a.txt", "provenance.json"]
    assert json.loads((out / "provenance.json").read_text()) == {**SETTINGS, "count": 1}
    assert files.is_built(out, SETTINGS, marker="provenance.json", settings_key=None)
    assert not files.is_built(out, {**SETTINGS, "seed": 1}, marker="provenance.json", settings_key=None)
    assert not files.is_built(out, SETTINGS)  # another marker name: not this build's


def test_an_interrupted_fill_leaves_the_previous_build_and_no_debris(tmp_path):
    out = tmp_path / "out"
    _build(out)
    before = _tree(out)

    def broken(staging):
        _fill("half")(staging)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _build(out, {**SETTINGS, "seed": 1}, broken)
    assert _tree(out) == before and [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(KeyboardInterrupt):  # from nothing: nothing appears, not even the folders made for it
        _build(tmp_path / "new" / "deeper" / "out", fill=broken, staging_in=tmp_path / "elsewhere" / "stage")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_swap_puts_the_previous_build_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _build(out)
    before, real = _tree(out), os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".out.staging-"):
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match="disk gone"):
        _build(out, {**SETTINGS, "seed": 1}, _fill("lost"))
    assert _tree(out) == before and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_folder_the_kit_did_not_build_is_refused_when_an_owner_is_named(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not built by detectlib.test"):
        _build(out, owner="detectlib.test", force=True)
    assert _tree(out) == {"mine.txt": "keep me"}
    assert _build(out) is True  # without an owner an unfinished folder is rebuilt (an interrupted rebuild's)
    assert "mine.txt" not in _tree(out)


def _finish_elsewhere(tmp_path: Path, out: Path, text: str) -> None:
    """What a concurrent builder does: its own finished build, renamed in."""
    other = tmp_path / "other" / out.name
    _build(other, fill=_fill(text))
    if out.exists():
        os.replace(out, tmp_path / "other" / "old")
    os.replace(other, out)


def test_a_concurrent_build_that_finished_first_is_kept(tmp_path):
    out = tmp_path / "out"

    def racing(staging):
        _finish_elsewhere(tmp_path, out, "theirs")
        return _fill("ours")(staging)

    assert _build(out, fill=racing) is False  # from nothing
    assert _tree(out)["sub/a.txt"] == "theirs"
    assert _build(out, fill=racing, force=True) is False  # over a finished build, while forcing ours
    assert _tree(out)["sub/a.txt"] == "theirs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_concurrent_build_renamed_in_during_the_swap_is_kept(tmp_path, monkeypatch):
    out, real = tmp_path / "out", os.replace
    _build(out, {**SETTINGS, "seed": 1})

    def replace(src, dst):
        if Path(src).name.startswith(".out.staging-") and Path(dst) == out:
            _finish_elsewhere(tmp_path, out, "theirs")  # between our moving the old one aside and our rename
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    assert _build(out, fill=_fill("ours")) is False
    assert _tree(out)["sub/a.txt"] == "theirs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_without_settings_an_existing_folder_is_reused_as_it_is(tmp_path):
    out, calls = tmp_path / "out", []
    assert _build(out, None, _fill("first", calls)) is True
    assert not (out / files.BUILD_MARKER).exists()  # no marker: the folder is the archive's content only
    assert _build(out, None, _fill("second", calls)) is False
    assert len(calls) == 1 and _tree(out) == {"sub/a.txt": "first"}


def test_move_file_renames_or_copies_across_filesystems(tmp_path, monkeypatch):
    src, dst = tmp_path / "a" / "model.pth", tmp_path / "b" / "c" / "model.pth"
    src.parent.mkdir()
    src.write_bytes(b"weights")
    assert files.move_file(src, dst) == dst and dst.read_bytes() == b"weights" and not src.exists()

    real = os.replace

    def replace(a, b):
        if Path(a) == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(a, b)

    monkeypatch.setattr(files.os, "replace", replace)
    src.write_bytes(b"new weights")
    assert files.move_file(src, dst) == dst
    assert dst.read_bytes() == b"new weights" and not src.exists()
    assert [p.name for p in dst.parent.iterdir()] == ["model.pth"]  # no temporary copy left

    def denied(a, b):
        raise PermissionError(errno.EACCES, "denied")

    src.write_bytes(b"x")
    monkeypatch.setattr(files.os, "replace", denied)
    with pytest.raises(PermissionError):  # only a cross-device rename falls back to a copy
        files.move_file(src, dst)
    assert src.exists() and dst.read_bytes() == b"new weights"
