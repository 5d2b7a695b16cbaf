"""Exercises of lesson 01, building the dataset: a leak-free split, the audit's format warning, JPEG blockiness,
and the prediction read against the lesson's own run."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .core import (
    Lesson,
    Measured,
    Question,
    Wrong,
    _code,
    _function,
    _needs,
    _number,
    _prediction_question,
    _run,
    _short,
)

# ============================================================================ lesson 01 · build the dataset


def _photo_of(name: str) -> str:
    return name.rsplit("_", 1)[0]


def _leaky_split(seed: int = 1) -> dict[str, list[str]]:
    """Patch files of every demo photo, dealt into train/val patch by patch: the leak lesson 01 avoids."""
    from ..data.demo import PHOTO_SPLIT

    rng = np.random.default_rng(seed)
    split: dict[str, list[str]] = {"train": [], "val": []}
    for photo in PHOTO_SPLIT:
        for i in range(int(rng.integers(3, 7))):
            split["val" if rng.random() < 0.25 else "train"].append(f"{photo}_{i:02d}.png")
    return {name: sorted(files) for name, files in split.items()}


_LEAK_SEEDS = (1, 29, 43)  # the split question 1 shows, then two it never shows


def _leak_feedback(given: set[str], split: dict[str, list[str]], on: str) -> None:
    """Raise ``Wrong`` naming the first mistake in the photos ``given`` as leaking from ``split``."""
    from ..data.demo import PHOTO_SPLIT

    expected = {_photo_of(n) for n in split["train"]} & {_photo_of(n) for n in split["val"]}
    files = sorted(g for g in given if g.endswith(".png"))
    if files:
        raise Wrong(f"your answer holds file names such as {files[0]!r}; give photo names "
                    f"({_photo_of(files[0])!r}): several files come from one photo.")
    cut = sorted(g for g in given - set(PHOTO_SPLIT) if any(p.startswith(g + "_") for p in PHOTO_SPLIT))
    if cut:
        full = next(p for p in PHOTO_SPLIT if p.startswith(cut[0] + "_"))
        raise Wrong(f"{cut[0]!r} is not a photo: names such as {full!r} contain underscores themselves. Cut each "
                    f"file name at its *last* underscore.")
    unknown = sorted(given - set(PHOTO_SPLIT))
    if unknown:
        raise Wrong(f"{unknown[0]!r} is not one of the photos ({', '.join(PHOTO_SPLIT)}).")
    extra = sorted(given - expected)
    if extra:
        only = "train" if any(_photo_of(n) == extra[0] for n in split["train"]) else "val"
        raise Wrong(f"on {on}, {extra[0]!r} has patches in {only} only, so it does not leak"
                    + (f" (and {len(extra) - 1} more like it)." if len(extra) > 1 else "."))
    if expected - given:
        raise Wrong(f"on {on} you found {len(given)} of the {len(expected)} leaking photos; look for the others.")


def _check_leak(leaking_photos: Any) -> str:
    from ..data.demo import PHOTO_SPLIT

    fn = _function(leaking_photos, "leaking_photos")
    for seed in _LEAK_SEEDS:
        split = _leaky_split(seed)
        on = "question 1's split" if seed == _LEAK_SEEDS[0] else f"another split (seed {seed})"
        out = _run(fn, "leaking_photos", on, {part: list(files) for part, files in split.items()})
        if isinstance(out, str) or not isinstance(out, Iterable):
            raise Wrong(f"leaking_photos should return a set of photo names such as {{'chelsea', 'coffee'}}, got "
                        f"{_short(out)} (on {on}).")
        _leak_feedback({str(x) for x in out}, split, on)
    split = _leaky_split(_LEAK_SEEDS[0])
    leaked = {_photo_of(n) for n in split["train"]} & {_photo_of(n) for n in split["val"]}
    return (f"{len(leaked)} of {len(PHOTO_SPLIT)} photos sit on both sides of question 1's split: a val score on it "
            "partly measures how well the model remembers those photos. dl.data.PHOTO_SPLIT gives every photo one "
            "split.")


def _split_cases() -> list[tuple[list[str], set[str]]]:
    """(files, val photos) pairs: lesson 01's own val photos, and another seeded draw (no hard-coding pays)."""
    from ..data.demo import PHOTO_SPLIT

    files = sorted(sum(_leaky_split().values(), []))
    other = sorted(sum(_leaky_split(seed=7).values(), []))
    val_photos = {p for p, s in PHOTO_SPLIT.items() if s == "val"}
    return [(files, val_photos), (other, {"hubble_deep_field", "chelsea", "grace_hopper"})]


def _check_split_by_photo(split_by_photo: Any) -> str:
    fn = _function(split_by_photo, "split_by_photo")
    for files, val_photos in _split_cases():
        on = f"{len(files)} files with val_photos={sorted(val_photos)}"
        out = _run(fn, "split_by_photo", on, list(files), set(val_photos))
        if not isinstance(out, dict) or set(out) != {"train", "val"}:
            raise Wrong(f"split_by_photo should return a dict with keys 'train' and 'val', got {_short(out)}.")
        placed = [str(f) for part in ("train", "val") for f in out[part]]
        missing, twice = sorted(set(files) - set(placed)), sorted({f for f in placed if placed.count(f) > 1})
        if twice:
            raise Wrong(f"{twice[0]} is placed twice; every file belongs to exactly one split.")
        if missing:
            raise Wrong(f"{len(missing)} file(s) are in neither split, e.g. {missing[0]}.")
        photos = {part: {_photo_of(str(f)) for f in out[part]} for part in ("train", "val")}
        both = sorted(photos["train"] & photos["val"])
        if both:
            raise Wrong(f"photo {both[0]!r} still has files in both splits ({on}).")
        wanted = {_photo_of(f) for f in files} & val_photos
        if photos["val"] != wanted:
            wrong = sorted(photos["val"] ^ wanted)[0]
            side = "val" if wrong in wanted else "train"
            raise Wrong(f"the files of {wrong!r} belong in {side} ({on}): val holds exactly the photos in "
                        "val_photos. Compare whole photo names (cut at the last underscore), not substrings.")
    return "no photo feeds both splits any more: the val score now measures detection on unseen photos."


_FORMAT_CASES: tuple[tuple[dict[str, int], dict[str, int]], ...] = (
    ({"PNG": 10}, {"PNG": 10}),
    ({"PNG": 10}, {"JPEG": 10}),
    ({"PNG": 5, "JPEG": 5}, {"PNG": 10, "JPEG": 10}),  # equal shares, different counts
    ({"PNG": 9, "JPEG": 1}, {"PNG": 10}),  # a gap of exactly SHARE_GAP: no warning
    ({"PNG": 8, "JPEG": 2}, {"PNG": 10}),
    ({"PNG": 3, "JPEG": 1}, {"PNG": 6, "JPEG": 1}),
)


@lru_cache(maxsize=1)
def _audit_verdicts() -> tuple[bool, ...]:
    """For each format case: does ``dl.data.audit_dataset`` warn about formats? (Tiny images in a temp dir.)"""
    from PIL import Image

    from ..data.audit import audit_dataset

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, counts in enumerate(_FORMAT_CASES):
            root = Path(tmp) / f"case{i}"
            for cls, per_format in zip(("ai", "nature"), counts, strict=True):
                folder = root / "train" / cls
                folder.mkdir(parents=True)
                n = 0
                for fmt, count in per_format.items():
                    for _ in range(count):
                        n += 1
                        extra = {"quality": 90} if fmt == "JPEG" else {}
                        Image.fromarray(pixels).save(folder / f"{n:03d}.{fmt.lower()}", fmt, **extra)
            verdicts.append(any("formats differ" in w for w in audit_dataset(root).warnings))
    return tuple(verdicts)


def _shares(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{fmt} {n / total:.0%}" for fmt, n in counts.items())


def _check_formats_warn(formats_warn: Any) -> str:
    from ..data.audit import SHARE_GAP

    fn = _function(formats_warn, "formats_warn")
    for (ai, nature), audit_warns in zip(_FORMAT_CASES, _audit_verdicts(), strict=True):
        on = f"ai={ai}, nature={nature}"
        out = _run(fn, "formats_warn", on, dict(ai), dict(nature))
        if not isinstance(out, bool | np.bool_):
            raise Wrong(f"formats_warn should return True or False, got {_short(out)} (on {on}).")
        if bool(out) == audit_warns:
            continue
        verdict = "warns" if audit_warns else "does not warn"
        if sum(ai.values()) != sum(nature.values()) and _shares(ai) == _shares(nature):
            why = "the shares are the same, only the counts differ: compare shares (count / total), not counts."
        else:
            gap = max(abs(ai.get(f, 0) / sum(ai.values()) - nature.get(f, 0) / sum(nature.values()))
                      for f in set(ai) | set(nature))
            rule = "more than" if audit_warns else "only when it is *more than*"
            why = (f"shares ai: {_shares(ai)}; nature: {_shares(nature)}. The largest gap is {gap:.0%}, and the "
                   f"audit warns {rule} dl.data.SHARE_GAP = {SHARE_GAP:.0%}.")
        raise Wrong(f"for ai {ai} and nature {nature} your function says {bool(out)}, but the audit {verdict}: "
                    f"{why}")
    return ("your rule agrees with dl.data.audit_dataset on all six cases. On real data this is the first "
            "warning to read: GenImage's fakes are PNG, its photos JPEG.")


def _grey_images() -> dict[str, np.ndarray]:
    """Grey test images: noise (no grid), a JPEG at quality 15 (a grid), an odd size."""
    from PIL import Image

    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:64, 0:64]
    smooth = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 7.0) + rng.normal(0, 6, (64, 64))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8), mode="L").save(buffer, "JPEG", quality=15)
    buffer.seek(0)
    return {
        "noise": rng.uniform(0, 255, (32, 32)),
        "jpeg": np.asarray(Image.open(buffer), dtype=float),
        "odd size": smooth[:30, :45].copy(),
    }


def _block_variant(grey: np.ndarray, edge: int, directions: int) -> float:
    """The two classic slips: boundary steps at ``% 8 == 0``, or horizontal steps only."""
    ratios = []
    for steps in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T)[:directions]:
        at_edge = np.arange(steps.shape[1]) % 8 == edge
        ratios.append(steps[:, at_edge].mean() / steps[:, ~at_edge].mean())
    return float(np.mean(ratios))


def _check_block_ratio(block_ratio: Any) -> str:
    from ..data.audit import blockiness

    fn = _function(block_ratio, "block_ratio")
    values = {}
    for name, grey in _grey_images().items():
        on = f"the {grey.shape[0]}x{grey.shape[1]} '{name}' image"
        got = _number(_run(fn, "block_ratio", on, grey.copy()), "block_ratio(...)")
        expected = blockiness(grey)
        values[name] = expected
        if np.isclose(got, expected, rtol=1e-6):
            continue
        if np.isclose(got, _block_variant(grey, 0, 2), rtol=1e-6):
            raise Wrong(f"on {on} you get {got:.3f}, expected {expected:.3f}. Your boundary steps are off by one: "
                        "np.diff(...)[:, 7] is the step from pixel 7 to pixel 8, so the boundary steps are those "
                        "with index % 8 == 7.")
        if np.isclose(got, _block_variant(grey, 7, 1), rtol=1e-6):
            raise Wrong(f"on {on} you get {got:.3f}, expected {expected:.3f}: you measured horizontal steps only; "
                        "average the ratio of horizontal steps with the ratio of vertical ones.")
        raise Wrong(f"on {on} your ratio is {got:.4f}, dl.data.blockiness says {expected:.4f}.")
    return (f"noise {values['noise']:.2f}, JPEG {values['jpeg']:.2f}: the 8x8 grid of the JPEG shows as a ratio "
            "above 1. That is why lesson 01 downscales the photos before cutting patches.")


def _measure_blockiness() -> Measured:
    """Lesson 01: blockiness of AE's validation fakes against its photos, from ``dl.data.audit_dataset``."""
    from ..config import get_paths
    from ..data.audit import audit_dataset

    folder = _needs(get_paths().raw / "AE", "01_build_dataset (it builds the demo dataset)")
    rows = [r for r in audit_dataset(folder).rows if r["split"] == "val"]
    mean = {cls: float(np.mean([r["blockiness"] for r in rows if r["class"] == cls])) for cls in ("ai", "nature")}
    gap = mean["ai"] - mean["nature"]
    choice = "same" if abs(gap) <= 0.05 else "ai" if gap > 0 else "nature"
    return Measured(choice, f"AE's validation fakes have blockiness {mean['ai']:.3f}, its photos "
                            f"{mean['nature']:.3f} (a gap of {gap:+.3f}; within ±0.05 counts as the same)")


# ================================================================================================ lessons


lesson01 = Lesson("01_build_dataset", "Build the dataset", [
    Question(
        "q1", "Find the leak", ("leaking_photos",), _check_leak,
        hints=("A photo leaks when it has patches on both sides. Collect the photos behind the train files, the "
               "photos behind the val files, and compare the two collections.",
               "A patch file is named <photo>_<index>.png, and some photo names contain underscores themselves: "
               "look up str.rsplit and its maxsplit argument. Python's set type has an operator for 'in both'."),
        setup=_code("""
            patches = ex.q1.data()  # {"train": [...], "val": [...]}: patch files, split patch by patch at random
            print(len(patches["train"]), "train files, e.g.", patches["train"][:3])
            print(len(patches["val"]), "val files, e.g.", patches["val"][:3])
        """),
        todo=_code('''
            def leaking_photos(split):
                """The photos with patch files in both split["train"] and split["val"], as a set of photo names."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def leaking_photos(split):
                """The photos with patch files in both split["train"] and split["val"], as a set of photo names."""
                def photo_of(name):
                    return name.rsplit("_", 1)[0]  # "hubble_deep_field_03.png" -> "hubble_deep_field"

                return {photo_of(n) for n in split["train"]} & {photo_of(n) for n in split["val"]}
        '''),
        data_fn=_leaky_split,
    ),
    Question(
        "q2", "Split by photo", ("split_by_photo",), _check_split_by_photo,
        hints=("Decide per photo, not per file: every file follows its photo to the side the photo belongs to.",
               "Start from a dict with two empty lists and loop over the files once; the photo behind a file is "
               "the same as in question 1, and the `in` operator tells whether it is one of val_photos."),
        setup=_code("""
            files = ex.q2.data()  # the files of question 1, in one list
            val_photos = {photo for photo, split in dl.data.PHOTO_SPLIT.items() if split == "val"}
            print(len(files), "files; val photos:", sorted(val_photos))
        """),
        todo=_code('''
            def split_by_photo(files, val_photos):
                """{"train": [...], "val": [...]}: the files of photos in val_photos go to val, all others to train."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def split_by_photo(files, val_photos):
                """{"train": [...], "val": [...]}: the files of photos in val_photos go to val, all others to train."""
                out = {"train": [], "val": []}
                for name in files:
                    photo = name.rsplit("_", 1)[0]
                    out["val" if photo in val_photos else "train"].append(name)
                return out
        '''),
        data_fn=lambda: sorted(sum(_leaky_split().values(), [])),
    ),
    Question(
        "q3", "Will the audit warn?", ("formats_warn",), _check_formats_warn,
        hints=("Two classes of different sizes can still look alike: compare what *share* of each class a format "
               "takes, not how many files it has, and warn only above a gap.",
               "Shares are counts divided by the class's total (sum of the dict's values); dict.get with a default "
               "gives a format a class lacks. Python's any() over every format seen in either class; the limit is "
               "dl.data.SHARE_GAP, and the audit's rule is strict."),
        setup='print("the audit warns when a format\'s share differs by more than", dl.data.SHARE_GAP)',
        todo=_code('''
            def formats_warn(ai_formats, nature_formats):
                """True when the audit would warn. Each argument counts files per format, e.g. {"PNG": 8, "JPEG": 2}."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def formats_warn(ai_formats, nature_formats):
                """True when the audit would warn. Each argument counts files per format, e.g. {"PNG": 8, "JPEG": 2}."""
                ai_total, nature_total = sum(ai_formats.values()), sum(nature_formats.values())
                return any(
                    abs(ai_formats.get(f, 0) / ai_total - nature_formats.get(f, 0) / nature_total) > dl.data.SHARE_GAP
                    for f in set(ai_formats) | set(nature_formats)
                )
        '''),
        forbidden=("detectlib.data.audit.*",),
    ),
    Question(
        "q4", "Measure the JPEG grid", ("block_ratio",), _check_block_ratio,
        hints=("JPEG codes 8 x 8 blocks separately, so the step between two neighbouring pixels is larger where a "
               "block ends than inside a block. Compare the two kinds of step, across columns and across rows.",
               "numpy.diff with its axis argument gives the steps between neighbours, numpy.abs their size; step "
               "number c goes from pixel c to c + 1, so work out which c cross a block edge (numpy.arange and %). "
               "A boolean mask and its ~ pick the two kinds of step."),
        setup=_code("""
            images = ex.q4.data()  # grey images as 2-D float arrays
            for name, grey in images.items():
                print(f"{name:9s} {grey.shape}  dl.data.blockiness: {dl.data.blockiness(grey):.3f}")
        """),
        todo=_code('''
            import numpy as np

            def block_ratio(grey):
                """Mean |step| across 8-pixel block boundaries / mean |step| elsewhere, for the horizontal and the
                vertical steps separately; returns the mean of the two ratios."""
                ...  # TODO
        '''),
        solution_code=_code('''
            import numpy as np

            def block_ratio(grey):
                """Mean |step| across 8-pixel block boundaries / mean |step| elsewhere, for the horizontal and the
                vertical steps separately; returns the mean of the two ratios."""
                ratios = []
                for steps in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T):
                    at_edge = np.arange(steps.shape[1]) % 8 == 7  # from pixel 7 to 8, 15 to 16, ...
                    ratios.append(steps[:, at_edge].mean() / steps[:, ~at_edge].mean())
                return float(np.mean(ratios))
        '''),
        data_fn=_grey_images,
        forbidden=("detectlib.data.audit.*",),
    ),
    _prediction_question(
        "q5", "Predict, then read the audit",
        {"ai": "AE's fakes show more of an 8 x 8 grid", "same": "no difference worth the name",
         "nature": "the photos show more of a grid"}, _measure_blockiness,
        hints=("Where could a grid come from in each class? The photos were JPEGs once; the AE fakes never were, "
               "but ask how an autoencoder builds an image.",
               "help(dl.data.blockiness) says what the ratio measures. Ask which class ever went through an 8 x 8 "
               "block code, and what lesson 01's downscale does to a grid before the patches are cut."),
        todo='prediction = ...  # TODO: "ai", "same" or "nature", written down before you run the check',
        solution_code=_code("""
            # The photos' JPEG grid is erased by the downscale before the patches are cut, while the AE decoder
            # upsamples from a coarse grid of its own, so its fakes can show a block pattern without any JPEG.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])
