"""Grad-CAM on one image from the command line (reference §6).

Introduced in notebook 06::

    python -m detectlib.gradcam_infer --image_path example.jpg \\
        --model_path models/saved_models/epoch_5.pth --target_layer "stages.2.blocks.4.conv_dw"
    🔍 Predicción: Generada
    📊 Confianza: 97.32%
    🧠 Capa: stages.2.blocks.4.conv_dw
    🖼️ Grad-CAM guardado en: results/gradcams/example_gradcam.jpg

The layer defaults to ``stages.2.blocks.4.conv_dw`` (a smaller ConvNeXt without it: the last block of stage 2,
said in the output; a CLIP-head checkpoint: its encoder's default layer); an unknown layer prints the available
names. Errors are one line, exit code 2. Lean on purpose: no matplotlib, no pytorch-grad-cam.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import command, note
from .cli import fail as _fail
from .config import get_language
from .data.images import load_image
from .files import atomic_write
from .labels import DEFAULT_THRESHOLD, LABELS, format_prediction


# The two lines the reference adds to infer's output (its table lives in ``labels``).
def output_path(image_path: Path | str, out_dir: Path | str) -> Path:
    """``<out_dir>/<original_name>_gradcam.jpg``, the reference's naming."""
    return Path(out_dir) / f"{Path(image_path).stem}_gradcam.jpg"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detectlib.gradcam_infer",
        description="Save a Grad-CAM heatmap overlay showing which regions of an image drove the detector's "
                    "decision (ConvNeXt or CLIP-head checkpoint).",
    )
    parser.add_argument("--image_path", required=True, help="the image to explain")
    parser.add_argument("--model_path", default="models/saved_models/best.pth",
                        help="checkpoint from detectlib.train or train_clip_head (default: %(default)s)")
    parser.add_argument("--target_layer", default=None,
                        help="layer to explain (default: stages.2.blocks.4.conv_dw for ConvNeXt, the last "
                             "block of stage 2 when absent; the last ViT layer's layer_norm1 for CLIP)")
    parser.add_argument("--out_dir", default="results/gradcams", help="output folder (default: %(default)s)")
    parser.add_argument("--target", choices=["ai", "nature"], default="ai",
                        help="class whose evidence is shown (default: %(default)s)")
    parser.add_argument("--alpha", type=float, default=0.45, help="heatmap opacity (default: %(default)s)")
    parser.add_argument("--lang", choices=sorted(LABELS), default=get_language(),
                        help="words of the printed lines: es (the reference's) or en (default: $DETECTLIB_LANG or es)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="p(ai) at or above which the image is called AI-generated (default: %(default)s)")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_path = Path(args.model_path)
    if not model_path.is_file():
        return _fail(f"--model_path {model_path}: checkpoint not found; train one (python -m detectlib.train) "
                     "or check the path")
    image = load_image(args.image_path)  # a bad image fails here, before the model is loaded (cli.command: one line)

    from .explain.cam import LayerError, explain
    from .models.detector import load_detector

    detector = load_detector(model_path)
    note(detector.describe())  # on stderr: stdout stays exactly the reference's output
    try:
        result = explain(detector, image, layer=args.target_layer, target=args.target)
    except LayerError as err:
        return _fail(str(err))
    overlay = result.overlays(args.alpha)[0]
    out = atomic_write(output_path(args.image_path, args.out_dir),
                       lambda tmp: overlay.save(tmp, format="JPEG", quality=95))
    words = LABELS[args.lang]
    print(format_prediction(float(result.p_ai[0]), args.lang, args.threshold))
    print(f"🧠 {words['layer']}: {result.layer}" + (f" ({result.note})" if result.note else ""))
    print(f"🖼️ {words['saved']}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
