"""Standard inference (reference §5) and the one scoring pipeline: image files -> decode -> preprocess -> p(ai).

Introduced in notebook 04::

    python -m detectlib.infer --image_path example.jpg --model_path models/saved_models/epoch_5.pth
    🔍 Predicción: Real
    📊 Confianza: 97.32%

``--lang en`` prints English words; several ``--image_path`` values or ``--image_dir`` write a CSV
(``path,p_ai,label``, label = class folder name ``ai`` / ``nature``; UTF-8, a file name that is not valid UTF-8
written with backslash escapes). Unreadable files are skipped with a warning each and a summary (``--strict``:
the first one stops the run); one unreadable ``--image_path`` alone is a one-line error, exit code 2. Either
detector is recognised from its checkpoint. Lean on purpose: one prediction should cost little more than ``import torch, timm``, so nothing here
imports scikit-learn or matplotlib, torch loads only once the paths are known to exist, and transformers only
when the checkpoint is a CLIP head. ``evaluate`` scores through ``score_paths`` too.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cli import add_strict, command, note
from .cli import fail as _fail
from .config import get_language
from .data import ImageLoadError, SkippedFileWarning, decode_side_of, is_image_file, load_image, warn_skipped
from .labels import DEFAULT_THRESHOLD, LABELS, format_prediction, predicted_class

if TYPE_CHECKING:
    from PIL import Image

    from .models import Detector


class _ImageFiles:
    """Map-style dataset of files -> (index, tensor or None, error or None): a bad file travels with its batch
    as a message instead of stopping the run."""

    def __init__(self, paths: Sequence[Path], transform: Callable, perturb: Callable | None = None):
        self.paths, self.transform, self.perturb = list(paths), transform, perturb
        # decoded for the size the transform needs; whole when perturbed, as a user's edit acts on the full image
        self.target = decode_side_of(transform) if perturb is None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_image(self.paths[index], self.target)
        except ImageLoadError as err:
            return index, None, str(err)
        if self.perturb is not None:
            image = self.perturb(image)
        return index, self.transform(image), None


@dataclass
class Predictions:
    """p(ai) for the files that could be read, in input order, and the ones skipped with the reason."""

    paths: list[Path]
    p_ai: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # index of each scored file in the input list


def score_paths(
    detector: Detector,
    paths: Sequence[Path | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
    perturb: Callable[[Image.Image], Image.Image] | None = None,
    progress: bool = False,
    strict: bool = False,
    warn: bool = True,
    cache_dir: Path | str | None = None,
) -> Predictions:
    """The whole pipeline, batched: decode each file, optionally perturb it (robustness), preprocess with the
    detector's own transform, and run the model under ``torch.inference_mode``.

    ``workers`` > 0 decodes in background processes while the model runs; unreadable files are skipped and
    listed in ``skipped``, each with a ``SkippedFileWarning`` and then a summary (``warn=False``: silently);
    ``strict``: the first one raises ``ImageLoadError``. With ``cache_dir``, a head over a *frozen* encoder
    reads each unperturbed image's embedding from the embedding cache (``features``) and runs only its head:
    the same numbers, without encoding an image twice across lessons.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    paths = [Path(p) for p in paths]
    if cache_dir is not None and perturb is None and detector.kind == "clip_head" and detector.model.freeze:
        return _score_through_cache(detector, paths, Path(cache_dir), batch_size, progress, strict)
    loader = DataLoader(_ImageFiles(paths, detector.transform, perturb), batch_size=batch_size,
                        num_workers=workers, collate_fn=list)
    kept: list[int] = []
    scores: list[torch.Tensor] = []
    skipped: list[tuple[Path, str]] = []
    with torch.inference_mode(), tqdm(total=len(paths), disable=not progress, unit="img", file=sys.stderr) as bar:
        for batch in loader:
            good = [(i, tensor) for i, tensor, _ in batch if tensor is not None]
            skipped += [(paths[i], err) for i, tensor, err in batch if tensor is None]
            for _, _, err in batch:
                if err is not None and strict:
                    raise ImageLoadError(err)
                if err is not None and warn:
                    warnings.warn(f"skipped {err}", SkippedFileWarning, stacklevel=2)
            if good:
                scores.append(detector.p_ai(torch.stack([t for _, t in good])).float().cpu())
                kept += [i for i, _ in good]
            bar.update(len(batch))
    if warn:
        warn_skipped(skipped)
    p_ai = torch.cat(scores).numpy().astype(np.float64) if scores else np.zeros(0)
    return Predictions([paths[i] for i in kept], p_ai, skipped, kept)


def _score_through_cache(detector: Detector, paths: list[Path], cache_dir: Path, batch_size: int, progress: bool,
                         strict: bool) -> Predictions:
    """``score_paths`` for a frozen-encoder head: embeddings through the cache, then the head alone."""
    from .clip_head import head_p_ai
    from .features import embed_samples

    embedded = embed_samples(detector.model.encoder, [(p, 0) for p in paths], cache_dir, batch_size, progress, strict)
    kept, pending = [], iter(enumerate(paths))
    for path in embedded.paths:  # embed_samples keeps the input order and leaves out unreadable files
        kept.append(next(i for i, candidate in pending if candidate == path))
    left_out = sorted(set(range(len(paths))) - set(kept))
    skipped = [(paths[i], "unreadable (see the warning above)") for i in left_out]
    p_ai = head_p_ai(detector.model.head, embedded.embeddings).numpy().astype(np.float64)
    return Predictions([paths[i] for i in kept], p_ai, skipped, kept)


def find_images(folder: Path | str) -> list[Path]:
    """Every entry named like an image under ``folder`` (recursively, never following a link to a folder), sorted.
    Entries that are not regular files (a folder or FIFO named ``x.png``, a broken link) are kept, so that
    scoring skips them with a warning naming them rather than dropping them silently."""
    return sorted(p for p in Path(folder).rglob("*") if is_image_file(p))


def write_csv_file(predictions: Predictions, path: Path | str, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """``write_csv`` to ``path`` through a temporary file and a rename: an interrupted run leaves no half CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8", errors="backslashreplace") as out:
            write_csv(predictions, out, threshold)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv(predictions: Predictions, out, threshold: float = DEFAULT_THRESHOLD) -> None:
    """Rows ``path,p_ai,label`` with the class folder name as label, so the file reads the same in any language."""
    writer = csv.writer(out)
    writer.writerow(["path", "p_ai", "label"])
    for path, p in zip(predictions.paths, predictions.p_ai, strict=True):
        writer.writerow([str(path), f"{p:.6f}", predicted_class(float(p), threshold)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detectlib.infer",
        description="Predict whether images are AI-generated or real with a trained detector (ConvNeXt or CLIP head).",
    )
    parser.add_argument("--image_path", nargs="+", action="extend", default=[],
                        help="image file(s); one prints the prediction, several write a CSV")
    parser.add_argument("--image_dir", help="folder of images (searched recursively); writes a CSV")
    parser.add_argument("--model_path", required=True, help="checkpoint from detectlib.train or train_clip_head")
    parser.add_argument("--lang", choices=sorted(LABELS), default=get_language(),
                        help="words of the printed prediction: es (the reference's) or en (default: $DETECTLIB_LANG or es)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="p(ai) at or above which an image is called AI-generated (default 0.5: argmax, "
                             "or the CLIP head's score 0); use one chosen on validation")
    parser.add_argument("--out_csv", help="CSV to write (default predictions.csv in CSV mode; '-' for stdout)")
    parser.add_argument("--batch_size", type=int, default=32)
    add_strict(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.image_path and not args.image_dir:
        return _fail("give --image_path (one or more images) or --image_dir (a folder of images)")
    model_path = Path(args.model_path)
    if not model_path.is_file():
        return _fail(f"--model_path {model_path}: checkpoint not found; train one (python -m detectlib.train) "
                     "or check the path")
    images = [Path(p) for p in args.image_path]
    for path in images:
        if not path.exists() and not path.is_symlink():  # a loop or a FIFO exists: the loader names what it is
            return _fail(f"--image_path {path}: image not found")
    if args.image_dir:
        if not Path(args.image_dir).is_dir():
            return _fail(f"--image_dir {args.image_dir}: folder not found")
        found = find_images(args.image_dir)
        if not found:
            return _fail(f"--image_dir {args.image_dir}: no image files in it")
        images += found
    single = len(images) == 1 and not args.image_dir and not args.out_csv
    if single:
        load_image(images[0])  # an unreadable file fails here, before the model is loaded (cli.command: one line)

    from .models import load_detector

    detector = load_detector(model_path)
    note(detector.describe())  # on stderr: stdout stays exactly the reference's output
    predictions = score_paths(detector, images, batch_size=args.batch_size, progress=not single,
                              strict=args.strict)
    if not len(predictions.paths):
        return _fail(f"none of the {len(images)} image files could be read")
    if single:
        print(format_prediction(float(predictions.p_ai[0]), args.lang, args.threshold))
        return 0
    out_csv = args.out_csv or "predictions.csv"
    if out_csv == "-":
        write_csv(predictions, sys.stdout, args.threshold)
    else:
        write_csv_file(predictions, out_csv, args.threshold)
        print(f"wrote {len(predictions.paths)} predictions to {out_csv}"
              + (f" ({len(predictions.skipped)} unreadable files skipped)" if predictions.skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
