"""``python -m detectlib.infer``: the reference's standard inference (notebook 07, the appendix).

    python -m detectlib.infer --image_path example.jpg --model_path models/saved_models/epoch_5.pth
    🔍 Predicción: Real
    📊 Confianza: 97.32%

``--lang en`` prints English words; several ``--image_path`` values or ``--image_dir`` write a CSV
(``path,p_ai,label``, label = class folder name ``ai`` / ``nature``; UTF-8, a file name that is not valid UTF-8
written with backslash escapes). Unreadable files are skipped with a warning each and a summary (``--strict``:
the first one stops the run); one unreadable ``--image_path`` alone is a one-line error, exit code 2. Either
detector is recognised from its checkpoint. Lean on purpose: one prediction should cost little more than ``import
torch, timm``, so nothing on this path imports scikit-learn or matplotlib (``evaluation.predictions`` scores), and
transformers loads only when the checkpoint is a CLIP head.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import add_strict, command, note
from .cli import fail as _fail
from .config import get_language
from .data.images import load_image
from .evaluation.predictions import Predictions, find_images, score_paths
from .files import atomic_write
from .labels import DEFAULT_THRESHOLD, LABELS, format_prediction, predicted_class


def write_csv_file(predictions: Predictions, path: Path | str, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """``write_csv`` to ``path``, atomically (``files.atomic_write``): an interrupted run leaves no half CSV."""
    def fill(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as out:
            write_csv(predictions, out, threshold)

    return atomic_write(path, fill)


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

    from .models.detector import load_detector

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
