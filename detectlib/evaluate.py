"""``python -m detectlib.evaluate``: the reference's evaluation of one checkpoint (notebook 04).

    python -m detectlib.evaluate --model_path models/saved_models/epoch_5.pth

The per-class report, the confusion matrix and ``results/figures/confusion_matrix.png`` for either detector, on a
split of a reference-layout dataset; ``--wild`` adds the checkpoint's scores on WILD. The measuring is in
``evaluation``; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import add_strict, command
from .config import get_paths
from .data.layout import LayoutError, check_layout
from .evaluation import metrics
from .evaluation.reports import trained_on, validation_threshold, wild_generator_table
from .evaluation.scoring import Scores, score_folder, score_wild
from .labels import DEFAULT_THRESHOLD, format_table
from .models.checkpoints import CheckpointError, load_checkpoint
from .models.detector import Detector, load_detector

DEFAULT_DATA_DIR = "data/raw/ADM"  # the reference's default dataset, used when the checkpoint names none


# ------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detectlib.evaluate",
        description="Evaluate a trained detector (ConvNeXt or CLIP head, recognised from the checkpoint) on one "
                    "split of a reference-layout dataset: per-class precision/recall/F1 and the confusion matrix.",
    )
    parser.add_argument("--model_path", required=True, help="checkpoint, e.g. models/saved_models/epoch_5.pth")
    parser.add_argument("--data_dir", default=None,
                        help="dataset root with <split>/ai and <split>/nature (default: the folder the checkpoint "
                             f"was trained on, else {DEFAULT_DATA_DIR})")
    parser.add_argument("--split", default="val", help="which split to evaluate (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="p(ai) at or above which an image counts as ai (default 0.5: argmax / CLIP score 0)")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size (default: %(default)s)")
    parser.add_argument("--figure", default="results/figures/confusion_matrix.png",
                        help="where to save the confusion matrix (default: %(default)s)")
    parser.add_argument("--wild", nargs="?", const="", default=None, metavar="DIR",
                        help="then score WILD, real text-to-image outputs against real photos (default folder: the "
                             "profile's data/wild, built by `python -m detectlib.wild`), at the threshold this "
                             "split chooses: AUC, TPR per generator, FPR on the photos")
    add_strict(parser)
    return parser


def _default_data_dir(model_path: Path) -> Path:
    """The (first) dataset the checkpoint was trained on, if it is still there, else the reference's default."""
    found = [d for d in trained_on(load_checkpoint(model_path)) if d.is_dir()]
    return found[0] if found else Path(DEFAULT_DATA_DIR)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """The reference's evaluation (§4). Bad paths and checkpoints: a one-line error, exit code 2. Unreadable
    images are skipped with a warning each and a summary (``--strict``: the first one is an error, exit 2)."""
    args = build_parser().parse_args(argv)
    model_path = Path(args.model_path)
    if not model_path.is_file():
        raise CheckpointError(f"--model_path {model_path}: checkpoint not found; train one first "
                              "(python -m detectlib.train) or check the path")
    data_dir = Path(args.data_dir) if args.data_dir else _default_data_dir(model_path)
    check_layout(data_dir, [args.split])  # bad paths and checkpoints: cli.command prints one line, exit 2
    detector = load_detector(model_path)
    scores = score_folder(detector, data_dir, args.split, batch_size=args.batch_size, progress=True,
                          strict=args.strict)
    if not len(scores):
        print(f"error: {data_dir / args.split}: no readable images", file=sys.stderr)
        return 2
    print(f"Evaluating {detector.kind} checkpoint {model_path} on {data_dir / args.split} ({len(scores)} images, "
          f"threshold {args.threshold:g} on p(ai))\n{detector.describe()}\n")
    print(scores.report(args.threshold))

    import matplotlib.pyplot as plt

    from . import plots

    fig = plots.plot_confusion_matrix(metrics.confusion_at_threshold(scores.y_true, scores.p_ai, args.threshold),
                                      title=f"{detector.kind} on {data_dir.name}/{args.split}")
    print(f"Confusion matrix figure: {plots.save_figure(fig, args.figure)}")
    plt.close(fig)
    if args.wild is not None:
        print_wild_report(detector, Path(args.wild) if args.wild else get_paths().wild, scores)
    return 0


def print_wild_report(detector: Detector, wild_dir: Path, val: Scores) -> None:
    """``--wild``: the detector on WILD at the threshold its validation scores ``val`` choose."""
    from .data.wild import MANIFEST

    if not (wild_dir / MANIFEST).is_file():
        raise LayoutError(f"--wild {wild_dir}: no WILD set there (no {MANIFEST}); build it with "
                          "`python -m detectlib.wild` or pass its folder")
    threshold = validation_threshold(val)
    wild = {detector.kind: score_wild(detector, wild_dir, progress=True)}
    summary = wild[detector.kind].summary(threshold)
    print(f"\nWILD ({wild_dir}): {summary['n_ai']} AI images, {summary['n_real']} real photos. Threshold "
          f"{threshold:.3f} on p(ai), chosen on {val.name} ({val.split}).")
    print(f"ROC-AUC {summary['auc']:.4f} | fakes caught (TPR) {summary['tpr']:.1%} | real photos flagged (FPR) "
          f"{summary['fpr']:.1%}\n")
    print(format_table(wild_generator_table(wild, {detector.kind: threshold})))


if __name__ == "__main__":
    sys.exit(main())
