"""Stand-ins for what the ``full`` profile downloads, written once per machine for ``make test-full``.

``full`` asks the Hugging Face hub for CLIP ViT-L/14 and for timm's ``convnext_tiny``, and the user for GenImage
folders. None of that can be had offline, so this writes, under ``~/.cache/detectlib/rehearsal/``:

* ``hf/``: a hub cache (to be named by ``HF_HUB_CACHE``, a switch every Hugging Face user has, so the user's own
  cache is never touched) holding the two repos ``full`` and timm ask for, laid out as ``huggingface_hub`` lays out
  a download, with seeded random weights: ``openai/clip-vit-large-patch14`` as the kit loads it (the vision tower's
  exact config and weights, float16 on disk, ``CLIPVisionModel``: the kit builds its own image processor and never
  loads the text tower), and timm's ``convnext_tiny`` repo (its 1000-class ImageNet head, as the real one);
* ``weights/convnext_tiny.safetensors``: the same ConvNeXt file on its own, what ``--weights`` reads;
* ``data/``: two generator folders in the reference layout, ``<GEN>/{train,val}/{ai,nature}``, made by the kit's
  own dataset builder (see ``write_dataset`` for why at 56 px, then bicubic x4 to 224 px).

Each item is a folder with a completion marker recording its settings; it is written into a temporary sibling and
renamed into place, so an interrupted run leaves no half item and a re-run with the same settings reuses it.
Every number these stand-ins give is meaningless (random weights); they exist so that every cell of every lesson
runs at the reference's sizes without knowing it is a rehearsal.

    python tests/full_rehearsal/prepare.py [--cache DIR]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig

DEFAULT_CACHE = Path.home() / ".cache" / "detectlib" / "rehearsal"
MARKER = ".rehearsal-complete"  # JSON: the settings the item was written with
SEED = 0
CLIP_REPO = "openai/clip-vit-large-patch14"  # what the full profile's encoder names (checked in main)
CONVNEXT = "convnext_tiny"  # the full profile's convnext_model

# The demo dataset's families whose sizes allow 56 px (DCGAN needs a power of two); lesson 01 reads raw/AE.
DATASET_FAMILIES = ("AE", "ESRGAN")


# ------------------------------------------------------------------------------------------------ cached items
def as_json(settings: dict[str, Any]) -> str:
    """The marker's text for ``settings``: compared as text, since JSON turns a config's int keys into strings."""
    return json.dumps(settings, indent=2, sort_keys=True)


def is_complete(folder: Path, settings: dict[str, Any]) -> bool:
    """True when ``folder`` holds an item finished with exactly these settings."""
    try:
        return (folder / MARKER).read_text() == as_json(settings)
    except OSError:
        return False


def cached_item(folder: Path, settings: dict[str, Any], write: Callable[[Path], None]) -> bool:
    """Make ``folder`` with ``write`` unless it is already complete with ``settings``; True when it was written.

    Why the temporary sibling: ``write`` can take minutes (or be interrupted); the item appears by one rename only
    once its marker is in, so a reader never sees half of it and a stale or half item is simply rebuilt."""
    if is_complete(folder, settings):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    staging.chmod(0o755)  # mkdtemp makes it private; the item is an ordinary cache folder
    try:
        write(staging)
        (staging / MARKER).write_text(as_json(settings))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


# --------------------------------------------------------------------------------------------- hub cache layout
def sha256_of(path: Path) -> str:
    """A file's SHA-256, read in chunks (ViT-L's weights are 600 MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hub_repo_folder(cache: Path, repo_id: str) -> Path:
    """Where ``huggingface_hub`` keeps a model repo inside a cache: ``models--<org>--<name>``."""
    from huggingface_hub.file_download import repo_folder_name

    return cache / repo_folder_name(repo_id=repo_id, repo_type="model")


def lay_out_as_hub(files: Path, repo_folder: Path) -> str:
    """Move the files of the flat folder ``files`` into ``repo_folder`` as a hub download leaves them; returns the
    commit. Each file becomes ``blobs/<sha256>``, linked from ``snapshots/<commit>/<name>``, and ``refs/main``
    names the commit (here a hash of the contents: same files, same commit), which is how an offline
    ``from_pretrained(repo_id)`` finds them."""
    digests = {path.name: sha256_of(path) for path in sorted(files.iterdir())}
    commit = hashlib.sha1(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    snapshot, blobs = repo_folder / "snapshots" / commit, repo_folder / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        os.replace(files / name, blobs / digest)
        (blobs / digest).chmod(0o644)  # as the hub leaves a blob (some writers make temporary files private)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", digest))
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(commit)
    return commit


def write_hub_repo(cache: Path, repo_id: str, settings: dict[str, Any], write_files: Callable[[Path], None]) -> bool:
    """A cached hub repo item: ``write_files`` fills a flat folder, laid out in ``cache`` as the hub does."""

    def write(repo_folder: Path) -> None:
        with tempfile.TemporaryDirectory(dir=repo_folder) as files:
            write_files(Path(files))
            lay_out_as_hub(Path(files), repo_folder)

    return cached_item(hub_repo_folder(cache, repo_id), {"repo_id": repo_id, **settings}, write)


# ------------------------------------------------------------------------------------------------------ models
def write_clip_repo(cache: Path, repo_id: str, config: CLIPVisionConfig, seed: int = SEED) -> bool:
    """A CLIP vision tower with seeded random weights as ``repo_id`` in the hub cache ``cache``.

    ``config`` is a ``CLIPVisionConfig`` (ViT-L/14's in ``main``, a tiny one in tests). Weights are float16 on
    disk (half the bytes) while ``config.json`` says float32, as the real repo's does: ``from_pretrained`` then
    gives the float32 model a user gets, so the kit's precision choices run as they would."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionModel

    def write_files(folder: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPVisionModel(copy.deepcopy(config))  # the caller's config stays as given (the marker's)
        model.config.architectures = ["CLIPVisionModel"]
        model.config.dtype = "float32"
        model.config.save_pretrained(folder)
        state = {name: tensor.to(torch.float16).contiguous() for name, tensor in model.state_dict().items()}
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})

    return write_hub_repo(cache, repo_id, {"config": config.to_dict(), "seed": seed, "disk_dtype": "float16"},
                          write_files)


def timm_hub_id(model_name: str) -> str:
    """The hub repo ``timm.create_model(model_name, pretrained=True)`` downloads from."""
    import timm

    return timm.models.get_pretrained_cfg(model_name).hf_hub_id


def write_timm_repo(cache: Path, model_name: str, seed: int = SEED) -> bool:
    """timm's hub repo for ``model_name`` with seeded random weights, written by timm's own ``save_for_hf``
    (``model.safetensors`` and ``config.json``, ImageNet's 1000-class head): ``pretrained=True`` loads it offline."""
    import timm
    import torch
    from timm.models import save_for_hf

    def write_files(folder: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(model_name, pretrained=False)
        save_for_hf(model, str(folder), safe_serialization=True)

    return write_hub_repo(cache, timm_hub_id(model_name), {"model": model_name, "seed": seed}, write_files)


def write_weights_file(folder: Path, cache: Path, model_name: str) -> bool:
    """``<folder>/<model_name>.safetensors``: the hub repo's weights file on its own, the file a user downloads
    from the model page and passes as ``--weights`` (a 1000-class state dict; the kit swaps the head)."""
    from huggingface_hub import try_to_load_from_cache

    source = Path(try_to_load_from_cache(timm_hub_id(model_name), "model.safetensors", cache_dir=cache))
    return cached_item(folder, {"model": model_name, "sha256": sha256_of(source)},
                       lambda out: shutil.copyfile(source, out / f"{model_name}.safetensors"))


# ------------------------------------------------------------------------------------------------------ dataset
def write_dataset(
    folder: Path,
    *,
    build_size: int = 56,
    train_per_class: int = 32,
    val_per_class: int = 16,
    generator_steps: int = 200,
    seed: int = SEED,
) -> bool:
    """Generator folders ``AE`` and ``ESRGAN`` at ``4 * build_size`` px, made by the kit's demo builder.

    Why not 224 px directly: the builder cuts every patch from a photo cell at least 3 x the image side, and the
    validation photos it ships are at most 640 px wide, so above 104 px it finds no validation source cells (at
    224 px, none at all); DCGAN also wants a power of two. So the kit builds at ``build_size`` (56: a quarter of
    224), then every image of both classes takes the same kit step, ``esrgan.bicubic_x4``, to 224 px; each
    ``synth_manifest.json`` (kept, for the source groups the lessons read) says so under ``rehearsal``."""
    settings = {"families": list(DATASET_FAMILIES), "build_size": build_size, "train_per_class": train_per_class,
                "val_per_class": val_per_class, "generator_steps": generator_steps, "seed": seed}

    def write(out: Path) -> None:
        import numpy as np
        from PIL import Image

        from detectlib.config import get_profile
        from detectlib.data import demo
        from detectlib.data.esrgan import EsrganFamily, bicubic_x4
        from detectlib.data.layout import SPLITS, list_class_images

        families = {"AE": demo.AutoencoderFamily, "ESRGAN": EsrganFamily}
        profile = get_profile("demo", img_size=build_size, train_per_class=train_per_class,
                              val_per_class=val_per_class, generator_steps=generator_steps)
        with tempfile.TemporaryDirectory() as tmp:
            raw = demo.build_demo_dataset(profile, Path(tmp) / "raw", seed=seed,
                                          families=[families[name]() for name in DATASET_FAMILIES])
            for gen in DATASET_FAMILIES:
                for split in SPLITS:
                    for cls in ("ai", "nature"):
                        files = list_class_images(raw / gen / split / cls)
                        big = bicubic_x4(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
                        (out / gen / split / cls).mkdir(parents=True)
                        for path, image in zip(files, big, strict=True):
                            Image.fromarray(image).save(out / gen / split / cls / path.name)
                manifest = json.loads((raw / gen / demo.MANIFEST).read_text())
                manifest["rehearsal"] = (f"built at {build_size} px by detectlib's demo builder, then every image "
                                         f"upscaled with esrgan.bicubic_x4 to {4 * build_size} px "
                                         "(tests/full_rehearsal/prepare.py)")
                (out / gen / demo.MANIFEST).write_text(json.dumps(manifest, indent=2))

    return cached_item(folder, settings, write)


# ------------------------------------------------------------------------------------------------------------ CLI
def folder_mb(folder: Path) -> float:
    """Bytes under ``folder`` in MB, each blob once (links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="default: %(default)s")
    args = parser.parse_args(argv)
    from detectlib.config import get_profile
    from detectlib.models.encoders import clip_l14_config

    full = get_profile("full")
    if (full.encoder, full.convnext_model) != (CLIP_REPO, CONVNEXT):
        raise SystemExit(f"the full profile now asks for {full.encoder} and {full.convnext_model}; "
                         "update the stand-ins in tests/full_rehearsal/prepare.py")
    cache, hf = args.cache, args.cache / "hf"
    steps: list[tuple[str, Callable[[], bool]]] = [
        (CLIP_REPO, lambda: write_clip_repo(hf, CLIP_REPO, clip_l14_config())),
        (timm_hub_id(CONVNEXT), lambda: write_timm_repo(hf, CONVNEXT)),
        (f"{CONVNEXT}.safetensors", lambda: write_weights_file(cache / "weights", hf, CONVNEXT)),
        ("dataset", lambda: write_dataset(cache / "data")),
    ]
    for name, step in steps:
        start = time.perf_counter()
        written = step()
        print(f"{'wrote' if written else 'reused'} {name} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"rehearsal stand-ins in {cache}: {folder_mb(cache):.0f} MB; random weights, so every score they give "
          "is meaningless")
    return 0


if __name__ == "__main__":
    sys.exit(main())
