"""The bad-input corpus (``badinputs.make_corpus``) through every entry point of the kit.

The policy under test, the same everywhere: by default a bad file is skipped with a warning naming it and the
reason, then a summary ``skipped N unreadable files: ...``; ``strict`` / ``--strict`` fails fast on the first one;
a command line never ends in a traceback on bad input, but in one line ``error: ...`` and exit code 2; nothing
reads a FIFO or follows a loop forever; and no entry point modifies, moves or deletes a corpus file (the last
test compares a snapshot of every file taken before the first test). One smoke ConvNeXt is trained once on the
corpus itself (module fixture) and reused by evaluate, infer, Grad-CAM and the widget.
"""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from badinputs import BAD, NOT_FILES, ODD_GOOD, SPACED_NAME, encoded, make_corpus, no_hang, noise, snapshot

from detectlib import cli, evaluate, gradcam_infer, infer, train, train_clip_head
from detectlib import create_full_all as full_all_cli
from detectlib import create_samples as samples_cli
from detectlib.config import CLASSES, BadInputError, get_profile
from detectlib.data.audit import audit_dataset
from detectlib.data.datasets import ImageFolderDataset, image_datasets
from detectlib.data.images import ImageLoadError, load_image
from detectlib.data.layout import LayoutError
from detectlib.data.tools import create_full_all, create_samples
from detectlib.data.transforms import build_transforms
from detectlib.models.checkpoints import CheckpointError, load_checkpoint
from detectlib.models.detector import load_detector
from detectlib.training import convnext

SMOKE = get_profile("smoke")
# the corpus's extra class folder warns wherever it is read: tests that do not look at warnings ignore it
QUIET_EXTRA = pytest.mark.filterwarnings("ignore:.*unexpected (class )?folder")
ENCODER = "timm:test_efficientnet:random"  # timm's 99k-parameter test network: an encoder in milliseconds


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    c = make_corpus(tmp_path_factory.mktemp("corpus"))
    c.before = snapshot(c.base)
    return c


def not_files(c) -> set[Path]:
    """Bad entries refused without being opened (so the byte-copying dataset tools skip them too)."""
    return {c.bad[k] for k in NOT_FILES} | ({c.bad["mode_000"]} if c.locked_is_unreadable else set())


def under(c, *parts: str) -> set[Path]:
    folder = c.root.joinpath(*parts)
    return {p for p in c.bad.values() if folder in p.parents}


def good_under(c, *parts: str) -> set[Path]:
    folder = c.root.joinpath(*parts)
    return {p for p, _ in c.good.values() if folder in p.parents}


def assert_one_line_error(err: str, *needles: str) -> str:
    """Warnings, notes (and progress bars) may come first; the run must end in exactly one ``error:`` line and show
    no traceback."""
    lines = [line.rsplit("\r", 1)[-1] for line in err.strip().splitlines()]  # what a terminal shows
    lines = [line for line in lines if line.strip() and "%|" not in line]  # minus tqdm bars
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    assert all(line.startswith(("warning: ", "note: ", "error: ")) for line in lines), err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


def warned_skipped(text: str, paths) -> None:
    for path in paths:
        assert f"skipped {path}: not a readable image (" in text, (path, text[-2000:])


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """The smoke ConvNeXt trained one epoch on the corpus itself: bad files skipped, a checkpoint written."""
    out = tmp_path_factory.mktemp("trained")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = convnext.train_convnext(corpus.root, profile=SMOKE, epochs=1, out_dir=out / "models",
                                      figures_dir=out / "figures", progress=False)
    return SimpleNamespace(result=result, ckpt=result.best_checkpoint, out=out,
                           warnings=[str(w.message) for w in caught])


@pytest.fixture(scope="module")
def detector(trained):
    return load_detector(trained.ckpt, device="cpu")


# ------------------------------------------------------------------------------------------- load_image
@pytest.mark.parametrize("label", ODD_GOOD)
def test_every_odd_but_good_image_loads_as_rgb_of_its_displayed_size(corpus, label):
    path, size = corpus.good[label]
    image = load_image(path)
    assert image.mode == "RGB" and image.size == size


@pytest.mark.parametrize("label", BAD)
def test_every_bad_file_is_an_image_load_error_naming_it_in_one_line(corpus, label):
    path = corpus.bad[label]
    with no_hang(10), pytest.raises(ImageLoadError) as err:
        load_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a readable image (") and "\n" not in message


def test_mode_000_is_unreadable_except_for_root(corpus):
    path = corpus.root / "val" / "ai" / "locked.png"
    if corpus.locked_is_unreadable:
        with pytest.raises(ImageLoadError, match="permission denied"):
            load_image(path)
    else:  # root reads through mode 000: the corpus's unreadable cases are then the directory and the FIFO
        assert os.geteuid() == 0 and load_image(path).size == (12, 12)


# ---------------------------------------------------------------------------------------------- datasets
def test_datasets_skip_each_bad_file_with_a_warning_and_a_summary(corpus):
    with no_hang(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sets = image_datasets(corpus.root, img_size=16)
    text = "\n".join(str(w.message) for w in caught)
    for split in ("train", "val"):
        assert {p for p, _ in sets[split].samples} == good_under(corpus, split)
        assert {p for p, _ in sets[split].skipped} == under(corpus, split)
        n = len(under(corpus, split))
        assert f"{corpus.root / split}: skipped {n} unreadable files: " in text
    warned_skipped(text, corpus.bad.values())
    assert "ignoring unexpected class folder(s) maybe" in text
    image, label = sets["train"][0]
    assert image.shape == (3, 16, 16) and label in (0, 1)


@QUIET_EXTRA
def test_strict_datasets_fail_fast_on_the_first_bad_file(corpus):
    with pytest.raises(ImageLoadError, match=r"train/ai/bomb\.png: not a readable image"):
        image_datasets(corpus.root, img_size=16, strict=True)


@QUIET_EXTRA
def test_streaming_dataset_refuses_non_files_at_once_and_replaces_a_bad_decode(corpus):
    transform = build_transforms(16)["val"]
    with no_hang(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = ImageFolderDataset(corpus.root / "train", transform, preload=False)
        listed = {p for p, _ in data.samples}
        assert not listed & not_files(corpus) and {corpus.bad["truncated_jpeg"]} <= listed
        index = [p for p, _ in data.samples].index(corpus.bad["truncated_jpeg"])
        image, label = data[index]  # replaced by the next readable image, with a warning
    assert image.shape == (3, 16, 16)
    assert any("truncated.jpg" in str(w.message) and "in its place" in str(w.message) for w in caught)
    with pytest.raises(ImageLoadError):
        ImageFolderDataset(corpus.root / "train", transform, preload=False, strict=True)


def test_layout_variants_missing_val_empty_class_and_extra_class(corpus):
    with pytest.raises(LayoutError, match=r"missing val/ai/, val/nature/"):
        image_datasets(corpus.no_val, img_size=16)
    with pytest.warns(UserWarning, match="no readable image of class nature"):
        image_datasets(corpus.empty_class, img_size=16)
    with pytest.raises(LayoutError, match="no readable image of class nature"):
        image_datasets(corpus.empty_class, img_size=16, strict=True)


# ------------------------------------------------------------------------------------------------- audit
def test_audit_names_every_bad_file_and_the_structure_problems(corpus):
    with no_hang():
        report = audit_dataset(corpus.raw)
    assert {p for p, _ in report.unreadable} == set(corpus.bad.values())
    assert all(reason.startswith(f"{p}: not a readable image") for p, reason in report.unreadable)
    text = "\n".join(report.warnings)
    assert "MESSY/train: unexpected folder(s) maybe ignored" in text
    assert "MESSY/val/nature: unreadable files:" in text and "folder.png" in text
    empty = audit_dataset(corpus.empty_class)
    assert any("train/nature: no image files" in w for w in empty.warnings)
    assert [r["split"] for r in audit_dataset(corpus.no_val).rows] == ["train", "train"]


# ----------------------------------------------------------------------------------------- dataset tools
@pytest.mark.parametrize("tool", ["samples", "full"])
def test_dataset_tools_copy_never_touch_sources_skip_non_files_and_never_hang(corpus, tmp_path, tool):
    def run():
        with no_hang(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if tool == "samples":
                summary = create_samples(corpus.raw, tmp_path / "out", n_per_class=100)
            else:
                summary = create_full_all(corpus.raw, tmp_path / "out")
        return summary, "\n".join(str(w.message) for w in caught)

    before = snapshot(corpus.base)
    first, text = run()
    assert {p for p, _ in first.skipped} == not_files(corpus)
    warned_skipped(text, not_files(corpus))
    assert f"skipped {len(not_files(corpus))} unreadable files" in str(first)
    assert "ignoring unexpected folder(s) maybe" in text
    regular = [p for p in corpus.root.rglob("*") if p.parent.name in CLASSES and p.is_file()
               and p not in not_files(corpus) and p.parent.parent.name in ("train", "val")]
    assert first.copied == len(regular)
    for src in regular:  # every copy holds its source's bytes, under <GEN>_<name>
        split, cls = src.parent.parent.name, src.parent.name
        assert (tmp_path / "out" / split / cls / f"MESSY_{src.name}").read_bytes() == src.read_bytes()
    second, _ = run()
    assert (second.copied, second.present) == (0, first.copied)
    assert snapshot(corpus.base) == before
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]


@QUIET_EXTRA
def test_dataset_tools_strict_is_all_or_nothing(corpus, tmp_path, capsys):
    with pytest.raises(ImageLoadError, match="bomb.png"):
        create_full_all(corpus.raw, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()  # checked before anything was written
    assert samples_cli.main(["--raw_dir", str(corpus.raw), "--out_dir", str(tmp_path / "s"), "--strict"]) == 2
    assert_one_line_error(capsys.readouterr().err, "not a readable image")
    assert not (tmp_path / "s").exists()
    summary = create_full_all(corpus.clean.parent, tmp_path / "clean", strict=True)  # good images only: all in
    assert summary.copied == len(list(corpus.clean.rglob("*.*"))) and not summary.skipped
    conflict = tmp_path / "clean" / "train" / "ai" / "CLEAN_plain_0.png"
    conflict.write_bytes(b"a different file")
    with pytest.raises(FileExistsError, match="strict mode never builds over a different file"):
        create_full_all(corpus.clean.parent, tmp_path / "clean", strict=True)
    assert conflict.read_bytes() == b"a different file"


def test_an_interrupted_dataset_build_leaves_no_half_file_and_a_rerun_completes(corpus, tmp_path, monkeypatch,
                                                                                 capsys):
    import shutil

    from detectlib.data import tools

    real_copy, calls = shutil.copy2, []

    def dying_copy(src, dst, **kwargs):
        calls.append(src)
        if len(calls) == 5:  # half of the fifth file lands on disk, then the user presses Ctrl-C
            Path(dst).write_bytes(Path(src).read_bytes()[:10])
            raise KeyboardInterrupt
        return real_copy(src, dst, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(tools.shutil, "copy2", dying_copy)
    assert full_all_cli.main(["--raw_dir", str(corpus.clean.parent), "--out_dir", str(out)]) == 130
    assert_one_line_error(capsys.readouterr().err, "interrupted")
    done = [p for p in out.rglob("*") if p.is_file()]
    assert len(done) == 4 and not [p for p in done if p.name.startswith(".")]
    for path in done:  # whatever is there is complete
        assert path.read_bytes() == (corpus.clean / path.parent.parent.name / path.parent.name /
                                     path.name.removeprefix("CLEAN_")).read_bytes()
    monkeypatch.setattr(tools.shutil, "copy2", real_copy)
    assert full_all_cli.main(["--raw_dir", str(corpus.clean.parent), "--out_dir", str(out)]) == 0
    assert f"{len(list(corpus.clean.rglob('*.*'))) - 4} copied, 4 already present" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- training
def test_training_on_the_corpus_skips_bad_files_and_saves_complete_checkpoints(corpus, trained):
    text = "\n".join(trained.warnings)
    warned_skipped(text, corpus.bad.values())
    assert f"skipped {len(under(corpus, 'train'))} unreadable files" in text
    row = trained.result.history.epochs[-1]
    assert row["train_images"] == len(good_under(corpus, "train"))
    assert row["val_images"] == len(good_under(corpus, "val"))
    files = sorted(p.name for p in (trained.out / "models").iterdir())
    assert files == ["best.pth", "epoch_1.pth"]  # no temporary file left behind
    assert load_checkpoint(trained.ckpt)["classes"] == list(CLASSES)


def _train_cli(data_dir, out: Path, *extra: str) -> list[str]:
    return ["--data_dir", str(data_dir), "--model", "convnext_atto", "--img_size", "32", "--epochs", "1",
            "--batch_size", "16", "--no-pretrained", "--out_dir", str(out / "models"),
            "--figures_dir", str(out / "figures"), *extra]


def test_train_cli_strict_and_layout_problems_are_one_line_errors(corpus, tmp_path, capsys):
    assert train.main(_train_cli(corpus.root, tmp_path, "--strict")) == 2
    assert_one_line_error(capsys.readouterr().err, "bomb.png: not a readable image")
    assert train.main(_train_cli(corpus.no_val, tmp_path)) == 2
    assert_one_line_error(capsys.readouterr().err, "missing val/ai/, val/nature/")
    assert train.main(_train_cli(corpus.empty_class, tmp_path)) == 2
    assert_one_line_error(capsys.readouterr().err, "no readable image of class nature")
    assert not (tmp_path / "models").exists()  # every one failed before a model was built


def test_an_interrupted_training_run_leaves_complete_checkpoints_and_resumes(corpus, tmp_path, monkeypatch,
                                                                              capsys):
    real_save, saves = torch.save, []

    def dying_save(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 3:  # epoch 2's checkpoint: half written, then Ctrl-C
            Path(f).write_bytes(b"PK\x03\x04half")
            raise KeyboardInterrupt
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    argv = _train_cli(corpus.clean, tmp_path, "--epochs", "2")
    assert train.main(argv) == 130
    assert_one_line_error(capsys.readouterr().err, "interrupted")
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["best.pth", "epoch_1.pth"]
    assert load_checkpoint(models / "epoch_1.pth")["epoch"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    assert train.main([*argv, "--resume"]) == 0
    assert "Resuming from" in capsys.readouterr().out
    assert load_checkpoint(models / "epoch_2.pth")["epoch"] == 2


def test_train_cli_skips_and_summarises(corpus, tmp_path, capsys):
    assert train.main(_train_cli(corpus.root, tmp_path)) == 0
    err = capsys.readouterr().err
    warned_skipped(err, corpus.bad.values())
    assert f"warning: {corpus.root / 'train'}: skipped {len(under(corpus, 'train'))} unreadable files: " in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------- frozen-encoder features and head
def test_embed_folder_skips_bad_files_and_caches_only_good_ones(corpus, tmp_path):
    from detectlib.models.encoders import make_encoder
    from detectlib.models.features import embed_folder

    encoder = make_encoder(ENCODER)
    with no_hang(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedded = embed_folder(encoder, corpus.root / "train", tmp_path / "cache")
    text = "\n".join(str(w.message) for w in caught)
    assert set(embedded.paths) == good_under(corpus, "train") and len(embedded.embeddings) == len(embedded.paths)
    assert embedded.stats.skipped == len(under(corpus, "train"))
    warned_skipped(text, under(corpus, "train"))
    assert f"skipped {len(under(corpus, 'train'))} unreadable files" in text
    with pytest.raises(ImageLoadError, match="pipe.png: not a readable image"):  # non-files are checked first
        embed_folder(encoder, corpus.root / "train", tmp_path / "cache", strict=True)


def test_an_interrupted_cache_write_leaves_no_half_file_and_a_rerun_completes(corpus, tmp_path, monkeypatch):
    from detectlib.models.encoders import make_encoder
    from detectlib.models.features import embed_folder

    encoder, cache, real_save = make_encoder(ENCODER), tmp_path / "cache", torch.save

    def dying_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        embed_folder(encoder, corpus.clean / "train", cache)
    assert list(cache.iterdir()) == []  # neither a cache file nor its temporary
    monkeypatch.setattr(torch, "save", real_save)
    first = embed_folder(encoder, corpus.clean / "train", cache)
    again = embed_folder(encoder, corpus.clean / "train", cache)
    assert first.stats.misses == again.stats.hits == len(first.paths) > 0


def test_train_clip_head_cli_skips_or_fails_fast(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DETECTLIB_ROOT", str(tmp_path))  # the embedding cache goes to tmp_path
    argv = ["--data_dir", str(corpus.root), "--encoder", ENCODER, "--epochs", "1", "--out_dir", str(tmp_path / "h")]
    assert train_clip_head.main([*argv, "--strict"]) == 2
    assert_one_line_error(capsys.readouterr().err, "pipe.png: not a readable image")
    assert train_clip_head.main(argv) == 0
    err = capsys.readouterr().err
    warned_skipped(err, corpus.bad.values())
    assert "warning: skipped" in err and "Traceback" not in err
    assert train_clip_head.main(["--data_dir", str(corpus.empty_class), *argv[2:]]) == 2
    assert_one_line_error(capsys.readouterr().err, "no readable train image of class nature")


# ------------------------------------------------------------------------------------ evaluate and infer
def test_evaluate_cli_scores_the_good_and_lists_the_bad(corpus, trained, tmp_path, capsys):
    argv = ["--model_path", str(trained.ckpt), "--data_dir", str(corpus.root), "--split", "train",
            "--figure", str(tmp_path / "cm.png")]
    with no_hang(60):
        assert evaluate.main(argv) == 0
    out, err = capsys.readouterr()
    assert f"({len(good_under(corpus, 'train'))} images" in out
    warned_skipped(err, under(corpus, "train"))
    assert f"warning: skipped {len(under(corpus, 'train'))} unreadable files: " in err
    assert "ignoring unexpected folder(s) maybe" in err and "Traceback" not in err
    assert evaluate.main([*argv, "--strict"]) == 2
    assert_one_line_error(capsys.readouterr().err, "bomb.png: not a readable image")


def test_infer_image_dir_writes_a_csv_of_the_good_ones_and_lists_the_bad(corpus, trained, tmp_path, capsys):
    out_csv = tmp_path / "pred.csv"
    argv = ["--image_dir", str(corpus.root), "--model_path", str(trained.ckpt), "--out_csv", str(out_csv)]
    with no_hang(60):
        assert infer.main(argv) == 0
    out, err = capsys.readouterr()
    good = {p for p, _ in corpus.good.values()} | set((corpus.root / "train" / "maybe").iterdir())
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))  # valid UTF-8 even with a non-UTF-8 name
    names = {r["path"] for r in rows}
    assert len(rows) == len(good) and all(r["label"] in CLASSES for r in rows)
    assert {str(p).encode("utf-8", "backslashreplace").decode() for p in good} == names
    assert any("caf\\udce9.png" in n for n in names) and any(SPACED_NAME in n for n in names)
    warned_skipped(err, corpus.bad.values())
    assert f"warning: skipped {len(corpus.bad)} unreadable files: " in err and "Traceback" not in err
    assert f"wrote {len(good)} predictions" in out
    assert infer.main([*argv, "--strict"]) == 2
    assert_one_line_error(capsys.readouterr().err, "not a readable image")


def test_an_interrupted_csv_write_leaves_no_half_file(corpus, trained, tmp_path, monkeypatch, capsys):
    def dying_write(predictions, out, threshold=0.5):
        out.write("path,p_ai,label\nhalf")
        raise KeyboardInterrupt

    monkeypatch.setattr(infer, "write_csv", dying_write)
    argv = ["--image_dir", str(corpus.clean), "--model_path", str(trained.ckpt), "--out_csv", str(tmp_path / "p.csv")]
    assert infer.main(argv) == 130
    assert_one_line_error(capsys.readouterr().err, "interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("label", BAD)
def test_infer_one_bad_image_is_one_line_exit_2(corpus, trained, capsys, label):
    with no_hang(20):
        code = infer.main(["--image_path", str(corpus.bad[label]), "--model_path", str(trained.ckpt)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert_one_line_error(err, f"{corpus.bad[label]}: not a readable image (")


@pytest.mark.parametrize("label", BAD)
def test_gradcam_on_a_bad_image_is_one_line_exit_2(corpus, trained, tmp_path, capsys, label):
    with no_hang(20):
        code = gradcam_infer.main(["--image_path", str(corpus.bad[label]), "--model_path", str(trained.ckpt),
                                   "--out_dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert_one_line_error(err, "not a readable image")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("label", ["one_pixel", "non_utf8_name", "png_16bit", "cmyk_jpeg"])
def test_gradcam_explains_odd_but_good_images(corpus, trained, tmp_path, capsys, label):
    path, size = corpus.good[label]
    assert gradcam_infer.main(["--image_path", str(path), "--model_path", str(trained.ckpt), "--lang", "en",
                               "--out_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("🔍 Prediction: ") and "Grad-CAM saved to:" in out
    [saved] = [p for p in tmp_path.iterdir()]
    assert saved.name.endswith("_gradcam.jpg") and load_image(saved).size == size


def test_a_real_process_shows_no_traceback(corpus, trained, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    commands = [
        ["detectlib.infer", "--image_path", str(corpus.bad["truncated_jpeg"]), "--model_path", str(trained.ckpt)],
        ["detectlib.gradcam_infer", "--image_path", str(corpus.bad["fifo"]), "--model_path", str(trained.ckpt)],
        ["detectlib.create_full_all", "--raw_dir", str(corpus.raw), "--out_dir", str(tmp_path / "o"), "--strict"],
    ]
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert_one_line_error(proc.stderr, "not a readable image")


# ----------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize(("label", "kind"), [("truncated_png", "a PNG image"), ("truncated_jpeg", "a JPEG image"),
                                             ("text_as_jpg", "a text file"), ("zero_bytes_png", "an empty file")])
def test_a_corpus_file_passed_as_a_checkpoint_is_not_a_checkpoint_not_a_payload(corpus, label, kind):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(corpus.bad[label])
    message = str(err.value)
    assert f"not a checkpoint, it is {kind}" in message and "run code" not in message and "\n" not in message


def test_checkpoint_problems_through_the_clis_are_one_line(corpus, trained, tmp_path, capsys):
    image = str(corpus.good["rgba"][0])
    assert infer.main(["--image_path", image, "--model_path", str(corpus.bad["truncated_png"])]) == 2
    assert_one_line_error(capsys.readouterr().err, "not a checkpoint, it is a PNG image")
    ckpt = load_checkpoint(trained.ckpt)
    ckpt["classes"] = ["real", "fake", "other"]
    torch.save(ckpt, tmp_path / "three.pth")
    assert evaluate.main(["--model_path", str(tmp_path / "three.pth"), "--data_dir", str(corpus.clean)]) == 2
    assert_one_line_error(capsys.readouterr().err, "['real', 'fake', 'other']", "['ai', 'nature']")


BAD_INPUT_ERRORS = {  # module: (error, its old base, still caught by ``except <base>``)
    "data.images": ("ImageLoadError", ValueError), "data.layout": ("LayoutError", ValueError),
    "models.checkpoints": ("CheckpointError", ValueError), "models.classifier": ("PretrainedWeightsError", RuntimeError),
    "explain.cam": ("LayerError", ValueError), "models.features": ("CacheFormatError", ValueError),
    "models.memory": ("GpuTooSmallError", RuntimeError),
}


@pytest.mark.parametrize("module", sorted(BAD_INPUT_ERRORS))
def test_every_bad_input_error_shares_one_base_and_keeps_its_own(module, capsys):
    name, base = BAD_INPUT_ERRORS[module]
    error = getattr(importlib.import_module(f"detectlib.{module}"), name)
    assert issubclass(error, BadInputError) and issubclass(error, base)
    assert cli.input_errors() == (BadInputError, OSError)

    @cli.command
    def main(argv):
        raise error("the input is wrong\nsecond line")

    assert main([]) == 2
    assert capsys.readouterr().err == "error: the input is wrong\n"


def test_a_bug_is_not_bad_input_and_keeps_its_traceback():
    @cli.command
    def main(argv):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        main([])


# ---------------------------------------------------------------------------------------------- widgets
def test_the_probe_shows_a_message_for_every_bad_upload_and_never_raises(corpus, detector):
    from detectlib.widgets import ImageProbe

    probe = ImageProbe({"ConvNeXt": detector}, lang="en", max_upload_bytes=64 * 1024)
    uploads = [(p.name, p.read_bytes() if p.is_file() and not p.is_symlink() else b"") for p in corpus.bad.values()]
    uploads += [("huge.png", encoded(noise(256, 256, 0), "PNG")),  # over the 64 kB limit set above
                ("..", b"not an image"), ("", b"\x89PNG\r\n\x1a\n"), ("a/../../b.jpg", b"\xff\xd8\xff")]
    messages = {}
    for name, data in uploads:
        probe.upload.set_state({"value": [{"name": name, "type": "image/png", "size": len(data),
                                           "content": memoryview(data), "last_modified": 0}]})
        messages[name] = message = probe.message.value
        assert probe.image is None and probe.p_ai == {}, name
        assert "#b00020" in message, (name, message)  # shown as an error, in the widget
        assert "not a readable image" in message or "upload limit" in message, (name, message)
    assert "over the 0 MB upload limit; type its path" in messages["huge.png"]
    assert "decompression bomb" in messages["bomb.png"] and "truncated" in messages["truncated.jpg"]


def test_the_probe_scores_every_odd_but_good_upload(corpus, detector):
    from detectlib.widgets import ImageProbe, image_from_bytes

    probe = ImageProbe({"ConvNeXt": detector}, lang="en")
    for label in ODD_GOOD:
        path, size = corpus.good[label]
        assert image_from_bytes(path.read_bytes(), path.name).size == size
        probe.load_upload(({"name": path.name, "content": memoryview(path.read_bytes())},))
        assert probe.image is not None and probe.image.size == size, (label, probe.message.value)
        assert 0.0 <= probe.p_ai["ConvNeXt"] <= 1.0 and "#b00020" not in probe.message.value


# ------------------------------------------------------------------------------------------ no data loss
def test_zz_no_entry_point_changed_a_single_corpus_file(corpus):
    """Runs last (file order): every test above read the corpus; none wrote, moved or deleted a thing in it."""
    assert snapshot(corpus.base) == corpus.before
