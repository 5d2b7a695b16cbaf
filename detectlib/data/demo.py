"""The embedded demo dataset: real photo patches from pip packages, fakes from generators trained here.

Introduced in notebook 01. Offline there is nothing to download, so the kit makes its own GenImage-style tree
``raw/<GEN>/{train,val}/{ai,nature}``, one folder per generator family:

* **nature**: patches cut from the photographs that ship inside scikit-image, scikit-learn and matplotlib
  (credits in ``data/README.md``). The photos are JPEG-compressed at the source, so every patch is a crop
  downscaled by a random factor in [2, 3] with an antialiasing filter: the 8x8 JPEG grid is averaged away and
  cannot mark the real class.
* **ai**: the output of a generator family (``GeneratorFamily``): a transposed-convolution autoencoder (``AE``)
  and a small DCGAN (``DCGAN``) trained here on the CPU; more families plug in through ``default_families``.

Two rules keep the lessons honest. Photos are split **by photo** (``PHOTO_SPLIT``): no photo feeds both train and
val. Inside every photo a grid of cells is dealt like a checkerboard into two roles: ``nature`` cells give the
real class, ``source`` cells give what the generators learn from or reconstruct, so a fake is never made from
pixels that also appear as a real image. Both classes are PNG at ``profile.img_size``.
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..config import Profile, get_paths, get_profile, seed_of
from ..files import build_folder, read_json
from .images import ImageLoadError, load_image, skip_bad_file, warn_skipped
from .layout import SPLITS, LayoutError, discover_generators, list_class_images

BUILD_VERSION = 2  # bump when a change to this module changes what it writes (2: source photo of every image)


MANIFEST = "synth_manifest.json"


MIN_SCALE, MAX_SCALE = 2.0, 3.0  # each patch is a crop downscaled by a factor in this range


FLAT_STD = 2.0  # flatter cells (std of grey levels) are skipped, e.g. the black corners of the retina photo


ROLES = ("nature", "source")


# The fixed assignment of photos to splits: every photo feeds exactly one split (tested).
PHOTO_SPLIT: dict[str, str] = {
    "astronaut": "train",
    "chelsea": "train",
    "hubble_deep_field": "train",
    "retina": "train",
    "stereo_motorcycle": "train",
    "china": "train",
    "grace_hopper": "train",
    "coffee": "val",
    "rocket": "val",
    "flower": "val",
    "immunohistochemistry": "val",
}


# ----------------------------------------------------------------------------------------------- real photos
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
)


@lru_cache(maxsize=1)
def _load_real_photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos = {}
    for name in SKIMAGE_PHOTOS + ("stereo_motorcycle",):
        try:
            image = getattr(skdata, name)()
        except (ImportError, OSError, ValueError) as err:  # newer scikit-image may want to download some
            warnings.warn(
                f"skipping photo {name!r}: scikit-image could not load it offline ({err})", stacklevel=3
            )
            continue
        photos[name] = image[0] if name == "stereo_motorcycle" else image  # (left, right, disparity)
    samples = load_sample_images()
    for filename, image in zip(samples.filenames, samples.images, strict=True):
        photos[Path(filename).stem] = image  # china, flower
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    for image in photos.values():
        image.setflags(write=False)  # shared by every caller through the cache
    return {name: photos[name] for name in PHOTO_SPLIT if name in photos}


def real_photos() -> dict[str, np.ndarray]:
    """The real photographs, name -> uint8 array (H, W, 3), all read offline from installed packages.

    Introduced in notebook 01. The arrays are read-only and cached: the first call reads the files.
    """
    return dict(_load_real_photos())


# ------------------------------------------------------------------------------------------------ patch pool
@dataclass(frozen=True)
class Cell:
    """One square region of one photo, owned by one split and one role; its pixels serve nothing else."""

    photo: str
    split: str
    role: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in the photo's own pixels


@dataclass(frozen=True)
class Crop:
    """Where one patch comes from: a window inside a cell, and one of the 8 flips/rotations (0 = none)."""

    cell: Cell
    box: tuple[int, int, int, int]
    dihedral: int


def photo_cells(size: int) -> list[Cell]:
    """Every photo cut into a grid of cells big enough for a ``MAX_SCALE`` x ``size`` crop, dealt into roles.

    Introduced in notebook 01. Roles alternate like a checkerboard (``nature`` where row + column is even), so
    each photo gives both roles from interleaved regions; near-uniform cells are dropped.
    """
    side = math.ceil(MAX_SCALE * size)
    cells = []
    for name, image in real_photos().items():
        height, width = image.shape[:2]
        rows, cols = height // side, width // side
        top0, left0 = (height - rows * side) // 2, (width - cols * side) // 2
        for r in range(rows):
            for c in range(cols):
                left, top = left0 + c * side, top0 + r * side
                if image[top : top + side, left : left + side].mean(axis=-1).std() < FLAT_STD:
                    continue
                role = ROLES[(r + c) % 2]
                cells.append(Cell(name, PHOTO_SPLIT[name], role, (left, top, left + side, top + side)))
    return cells


class PatchPool:
    """Random real patches of one split and size, for the nature class and for generator sources.

    Introduced in notebook 01; every generator family gets its sources from here. A patch is drawn by picking
    a photo with odds growing as the square root of its cell count (so big photos do not dominate and small ones
    are not repeated too often), then one of its cells of the wanted role, then a random
    window of ``size * U(MIN_SCALE, MAX_SCALE)`` pixels inside the cell, downscaled with Lanczos (antialiased)
    to ``size`` and flipped/rotated at random.
    """

    def __init__(self, size: int, split: str):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.size, self.split = size, split
        self.cells = [cell for cell in photo_cells(size) if cell.split == split]

    def crops(self, role: str, n: int, rng: np.random.Generator) -> list[Crop]:
        """Where ``n`` patches of ``role`` come from (no pixels yet)."""
        by_photo: dict[str, list[Cell]] = {}
        for cell in self.cells:
            if cell.role == role:
                by_photo.setdefault(cell.photo, []).append(cell)
        if not by_photo:
            raise ValueError(f"no {role!r} cells in split {self.split!r} at size {self.size}")
        photos = sorted(by_photo)
        weights = np.sqrt([len(by_photo[name]) for name in photos])
        out = []
        for _ in range(n):
            cells = by_photo[photos[rng.choice(len(photos), p=weights / weights.sum())]]
            cell = cells[rng.integers(len(cells))]
            left, top, right, bottom = cell.box
            window = min(round(self.size * rng.uniform(MIN_SCALE, MAX_SCALE)), right - left, bottom - top)
            x, y = int(rng.integers(left, right - window + 1)), int(rng.integers(top, bottom - window + 1))
            out.append(Crop(cell, (x, y, x + window, y + window), int(rng.integers(8))))
        return out

    def render(self, crops: Sequence[Crop]) -> np.ndarray:
        """Pixels of the crops: uint8 (n, size, size, 3)."""
        photos = real_photos()
        out = np.empty((len(crops), self.size, self.size, 3), dtype=np.uint8)
        for i, crop in enumerate(crops):
            left, top, right, bottom = crop.box
            window = Image.fromarray(photos[crop.cell.photo][top:bottom, left:right])
            patch = np.asarray(window.resize((self.size, self.size), Image.Resampling.LANCZOS))
            patch = np.rot90(patch, crop.dihedral % 4)
            out[i] = patch[:, ::-1] if crop.dihedral >= 4 else patch
        return out

    def sample(self, role: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random patches of ``role`` (``"nature"`` or ``"source"``): uint8 (n, size, size, 3)."""
        return self.render(self.crops(role, n, rng))


# ------------------------------------------------------------------------------------------ generator families
class GeneratorFamily(Protocol):
    """A way of making fakes; each family becomes one generator folder ``raw/<name>``.

    ``fit`` sees train-split source patches (uint8 [N, S, S, 3]) and may do nothing (a pretrained generator).
    ``generate`` gets real patches of the split being built, reserved for this family's fakes (never the
    split's nature patches); a family that samples from noise may ignore them, and says so with
    ``from_sources = False`` (its fakes then belong to no photo: each is its own group).
    """

    name: str

    def fit(self, train_patches: np.ndarray, profile: Profile, seed: int) -> None: ...

    def generate(self, sources: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray: ...


def _to_tensor(images: np.ndarray):
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], the range of a tanh output."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _to_uint8(tensor) -> np.ndarray:
    """The inverse of ``_to_tensor``, rounded: what a PNG of the generator's output holds."""
    return tensor.detach().add(1.0).mul(127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _run_batched(net, inputs, batch: int = 64) -> np.ndarray:
    """uint8 images from ``net`` applied to ``inputs`` (a tensor) chunk by chunk, without gradients."""
    import torch

    with torch.no_grad():
        return np.concatenate([_to_uint8(net(inputs[i : i + batch])) for i in range(0, len(inputs), batch)])


class _TorchFamily:
    """Shared by the families trained here: seeded training without touching the caller's torch RNG."""

    name: str
    batch_size: int = 16

    def _batches(self, patches: np.ndarray, steps: int, seed: int, desc: str):
        """Yield ``steps`` random minibatches as tensors, with a progress bar."""
        from tqdm.auto import tqdm

        rng = np.random.default_rng(seed)
        for _ in tqdm(range(steps), desc=desc, leave=False, mininterval=1.0):
            yield _to_tensor(patches[rng.integers(len(patches), size=self.batch_size)])


class AutoencoderFamily(_TorchFamily):
    """``AE``: a convolutional autoencoder whose decoder upsamples with transposed convolutions.

    Introduced in notebook 01. Three stride-2 transposed convolutions with 3x3 kernels overlap unevenly, which
    prints a periodic (checkerboard) pattern on every output: the peaks of its spectrum. Fakes are
    reconstructions of the split's source patches.
    """

    name = "AE"

    def __init__(self, width: int = 16, lr: float = 2e-3, batch_size: int = 16):
        self.width, self.lr, self.batch_size = width, lr, batch_size
        self.model = None

    def _build(self, size: int):
        from torch import nn

        if size % 8:
            raise ValueError(f"{self.name} needs an image size divisible by 8, got {size}")
        w = self.width
        return nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(w, 3, 3, 2, 1, output_padding=1), nn.Tanh(),
        )  # fmt: skip

    def fit(self, train_patches: np.ndarray, profile: Profile, seed: int) -> None:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self._build(train_patches.shape[1])
            optimiser = torch.optim.Adam(self.model.parameters(), lr=self.lr)
            for batch in self._batches(train_patches, profile.generator_steps, seed, f"train {self.name}"):
                loss = torch.nn.functional.l1_loss(self.model(batch), batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self.model.eval()

    def generate(self, sources: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        if len(sources) < n:
            raise ValueError(f"{self.name} needs {n} source patches, got {len(sources)}")
        return _run_batched(self.model, _to_tensor(sources[:n]))


class DCGANFamily(_TorchFamily):
    """``DCGAN``: a small deep-convolutional GAN trained on train-split source patches; fakes are samples.

    Introduced in notebook 01. Its generator also upsamples with stride-2 transposed convolutions (4x4 kernels);
    the discriminator pushes it to hide their pattern, which a short training run on a CPU achieves only in part.
    """

    name = "DCGAN"
    from_sources = False  # samples from noise: no fake comes from a val photo

    def __init__(self, width: int = 8, latent: int = 64, lr: float = 5e-4, batch_size: int = 16):
        self.width, self.latent, self.lr, self.batch_size = width, latent, lr, batch_size
        self.generator = None

    def _build(self, size: int):
        from torch import nn

        ups = int(math.log2(size)) - 2  # 4x4 -> size
        if size < 16 or 4 * 2**ups != size:
            raise ValueError(f"{self.name} needs a power-of-two image size >= 16, got {size}")
        chans = [self.width * 2**k for k in reversed(range(ups))]  # e.g. 64, 32, 16, 8 for 64 px
        g_layers = [nn.ConvTranspose2d(self.latent, chans[0], 4, 1, 0), nn.BatchNorm2d(chans[0]), nn.ReLU()]
        for c_in, c_out in zip(chans, chans[1:], strict=False):
            g_layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        g_layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1), nn.Tanh()]
        d_layers = [nn.Conv2d(3, chans[-1], 4, 2, 1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(chans[::-1], chans[-2::-1], strict=False):
            d_layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        d_layers += [nn.Conv2d(chans[0], 1, 4, 1, 0), nn.Flatten()]
        return nn.Sequential(*g_layers), nn.Sequential(*d_layers)

    def fit(self, train_patches: np.ndarray, profile: Profile, seed: int) -> None:
        import torch
        from torch.nn.functional import binary_cross_entropy_with_logits as bce

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator, critic = self._build(train_patches.shape[1])
            opt_g = torch.optim.Adam(generator.parameters(), lr=self.lr, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=(0.5, 0.999))
            for real in self._batches(train_patches, profile.generator_steps, seed, f"train {self.name}"):
                fake = generator(torch.randn(len(real), self.latent, 1, 1))
                ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
                loss_d = bce(critic(real), ones) + bce(critic(fake.detach()), zeros)
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                loss_g = bce(critic(fake), ones)  # the non-saturating generator loss
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
        self.generator = generator.eval()

    def generate(self, sources: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        return _run_batched(
            self.generator, torch.from_numpy(rng.standard_normal((n, self.latent, 1, 1), np.float32))
        )


def default_families(profile: Profile | None = None) -> list[GeneratorFamily]:
    """The families ``build_demo_dataset`` makes, in order: the registry a new family is added to.

    Introduced in notebook 01. A family is any object with ``name``, ``fit`` and ``generate``
    (``GeneratorFamily``); add one here with one line. ``profile`` lets a family depend on the sizes.
    """
    from .esrgan import EsrganFamily

    return [AutoencoderFamily(), DCGANFamily(), EsrganFamily()]


# ----------------------------------------------------------------------------------------------------- build
def _family_rng(seed: int, family: str, purpose: str) -> np.random.Generator:
    """An independent, stable stream per family and purpose: adding a family never changes the others."""
    return np.random.default_rng([seed, zlib.crc32(f"{family}/{purpose}".encode())])


def _settings(profile: Profile, seed: int, family: str) -> dict:
    return {
        "builder": "detectlib.synth",
        "version": BUILD_VERSION,
        "family": family,
        "seed": seed,
        "img_size": profile.img_size,
        "train_per_class": profile.train_per_class,
        "val_per_class": profile.val_per_class,
        "generator_steps": profile.generator_steps,
    }


def _has_every_image(folder: Path, manifest: dict) -> bool:
    """Every image the manifest counts is in ``folder`` (``build_folder``'s check of a finished build)."""
    return all(
        len(list_class_images(folder / split / cls)) == n
        for split, per_class in manifest["counts"].items()
        for cls, n in per_class.items()
    )


def _write_pngs(images: np.ndarray, folder: Path, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{prefix}_{i:05d}.png")


def _build_family(
    family: GeneratorFamily, pools: dict[str, PatchPool], profile: Profile, seed: int, staging: Path
) -> dict[str, dict]:
    """Fit one family and write its whole folder under ``staging``; returns the image counts and the source
    group of every image (``split/class/file`` -> ``photo:<name>``): a fake made from a photo's patch belongs to
    that photo, as the real patches cut from it do, so a split or an interval can keep each photo on one side."""
    per_split = {"train": profile.train_per_class, "val": profile.val_per_class}
    fit_patches = pools["train"].sample(
        "source", 4 * profile.train_per_class, _family_rng(seed, family.name, "fit")
    )
    family.fit(fit_patches, profile, seed)
    counts, groups = {}, {}
    for split, n in per_split.items():
        pool = pools[split]
        nature_crops = pool.crops("nature", n, _family_rng(seed, family.name, f"nature/{split}"))
        source_crops = pool.crops("source", n, _family_rng(seed, family.name, f"source/{split}"))
        sources = pool.render(source_crops)
        fakes = np.asarray(family.generate(sources, n, _family_rng(seed, family.name, f"generate/{split}")))
        expected = (n, profile.img_size, profile.img_size, 3)
        if fakes.shape != expected or fakes.dtype != np.uint8:
            raise ValueError(
                f"{family.name}.generate returned {fakes.dtype} {fakes.shape}, expected uint8 {expected}"
            )
        _write_pngs(fakes, staging / split / "ai", "ai")
        _write_pngs(pool.render(nature_crops), staging / split / "nature", "nature")
        counts[split] = {"ai": n, "nature": n}
        from_sources = getattr(family, "from_sources", True)
        for i in range(n):
            groups[f"{split}/nature/nature_{i:05d}.png"] = f"photo:{nature_crops[i].cell.photo}"
            groups[f"{split}/ai/ai_{i:05d}.png"] = (f"photo:{source_crops[i].cell.photo}" if from_sources
                                                    else f"{family.name}:{split}/ai_{i:05d}")
    return {"counts": counts, "groups": groups}


def build_demo_dataset(
    profile: Profile | str | None = None,
    root: Path | str | None = None,
    seed: int | None = None,
    families: Iterable[GeneratorFamily] | None = None,
    force: bool = False,
) -> Path:
    """Build (or reuse) one generator folder per family under ``root`` (default ``paths.raw``); returns ``root``.

    Introduced in notebook 01. Each folder records its settings in ``synth_manifest.json``: a re-run with the same
    settings reuses it, ``force`` rebuilds it. A folder is written beside ``root`` and renamed into place when
    complete, so an interrupted build leaves no half-written image. A folder this module did not build is
    never replaced.
    """
    seed = seed_of(seed)
    profile = get_profile(profile)
    if profile.train_per_class <= 0 or profile.val_per_class <= 0:
        raise ValueError(
            f"profile {profile.name!r} has no demo-dataset sizes; build it with the demo or smoke profile "
            "(real data for 'full': see data/README.md)"
        )
    root = Path(root) if root is not None else get_paths(profile).raw
    families = list(default_families(profile) if families is None else families)
    start, built, reused = time.perf_counter(), [], []
    pools: dict[str, PatchPool] = {}
    seconds: dict[str, float] = {}
    for family in families:

        def fill(staging: Path, family: GeneratorFamily = family) -> dict:
            nonlocal pools
            t0 = time.perf_counter()
            pools = pools or {split: PatchPool(profile.img_size, split) for split in SPLITS}
            written = _build_family(family, pools, profile, seed, staging)
            seconds[family.name] = round(time.perf_counter() - t0, 1)
            return {**written, "seconds": seconds[family.name]}

        # beside root, not in it: a staging folder is never taken for a generator
        if build_folder(root / family.name, _settings(profile, seed, family.name), fill, force=force,
                        marker=MANIFEST, complete=_has_every_image, owner="detectlib.synth", staging_in=root.parent):
            built.append(f"{family.name} ({seconds[family.name]} s)")
        else:
            reused.append(family.name)
    if any(family.name == "ESRGAN" for family in families):
        _ensure_resampling_control(profile, seed, root, pools)
    if reused:
        print(f"Reusing {', '.join(reused)} in {root} (same settings; force=True or --force rebuilds)")
    if built:
        print(
            f"Built {', '.join(built)} in {root}: {profile.train_per_class} train + {profile.val_per_class} val "
            f"images per class, {profile.img_size} px PNG, {time.perf_counter() - start:.1f} s in all"
        )
    return root


def _ensure_resampling_control(profile: Profile, seed: int, root: Path, pools: dict[str, PatchPool]) -> None:
    """The evaluation-only control beside ``root``: val-split real patches shrunk ×4 and regrown with bicubic.

    Labelled ``nature``: a detector that calls them AI has learned "upscaled", not the GAN's traces.
    """
    from .esrgan import build_resampling_control
    from .layout import CONTROL_NAME, control_dir

    settings = {**_settings(profile, seed, CONTROL_NAME), "count": profile.val_per_class}
    out = control_dir(raw_root=root)

    counts: dict[str, dict[str, int]] = {}

    def fill(staging: Path) -> dict:
        nonlocal pools
        pools = pools or {"val": PatchPool(profile.img_size, "val")}
        sources = pools["val"].sample("source", profile.val_per_class, _family_rng(seed, CONTROL_NAME, "source/val"))
        counts["val"] = {"nature": build_resampling_control(sources, staging / "val" / "nature")}
        return {"counts": counts}

    if build_folder(out, settings, fill, marker=MANIFEST, complete=_has_every_image):
        print(f"Resampling control: {counts['val']['nature']} bicubic-upscaled real patches (label nature) in "
              f"{out / 'val' / 'nature'}")


def ensure_demo_dataset(profile: Profile | str | None = None) -> Path:
    """The generator folders the notebooks read (``paths.raw``), built on first use.

    Introduced in notebook 01. The ``full`` profile builds nothing: it returns ``paths.raw`` when real
    generator folders are there, and otherwise says how to bring them.
    """
    profile = get_profile(profile)
    if profile.train_per_class > 0:
        return build_demo_dataset(profile)
    raw = get_paths(profile).raw
    if not discover_generators(raw):
        from .realdata import how_to_bring_data

        raise LayoutError(f"{raw}: no generator folders found. {how_to_bring_data(raw)}")
    return raw


def source_groups(paths: Sequence[Path | str]) -> list[str]:
    """The source photo of each image (``photo:<name>``), read from its generator folder's manifest.

    Why: crops of one photo are not independent evidence. A split, an interval or a bootstrap that treats them as
    independent lets a photo sit on both sides (lesson 01's leak) and gives bands far too narrow. An ``ALL_full``
    copy (``AE_ai_00012.png``) is looked up in the generator folder beside it; an image with no record (real data,
    another layout) is its own group, the usual assumption when nothing better is known."""
    manifests: dict[Path, dict] = {}

    def record(folder: Path) -> dict:
        if folder not in manifests:
            manifests[folder] = (read_json(folder / MANIFEST) or {}).get("groups", {})
        return manifests[folder]

    out = []
    for path in map(Path, paths):
        split, cls, name = path.parts[-3:]
        folder = path.parents[2]
        group = record(folder).get(f"{split}/{cls}/{name}")
        if group is None and "_" in name:
            generator, rest = name.split("_", 1)
            group = record(folder.parent / generator).get(f"{split}/{cls}/{rest}")
        out.append(group or str(path))
    return out


# -------------------------------------------------------------------------------------------------- spectra
def mean_log_spectrum(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Mean log-amplitude 2-D Fourier spectrum of same-size images (grey levels), zero frequency in the centre.

    Introduced in notebook 01. Averaging over many images cancels the content and keeps what every image
    shares: the smooth fall-off of natural photos, and the bright periodic peaks that upsampling layers print.
    A Hann window first fades the borders, whose jump from one side to the other would draw a bright cross.
    """
    stack = np.asarray(images, dtype=np.float64)
    grey = stack.mean(axis=-1) if stack.ndim == 4 else stack
    grey = grey - grey.mean(axis=(-2, -1), keepdims=True)  # drop the brightness (the DC term)
    window = np.outer(np.hanning(grey.shape[-2]), np.hanning(grey.shape[-1]))
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(grey * window), axes=(-2, -1)))
    return np.log(amplitude + 1e-3).mean(axis=0)


def dataset_spectra(
    raw_root: Path | str, split: str = "val", max_per_class: int = 200
) -> dict[str, np.ndarray]:
    """``{"real": ..., <GEN>: ...}`` mean log spectra of a generator tree: all nature images, and each ai folder.

    Introduced in notebook 01. Images whose size differs from the first one read are skipped (spectra of
    different sizes cannot be averaged; resizing would change them).
    """
    raw = Path(raw_root)
    groups: dict[str, list[np.ndarray]] = {"real": []}
    for gen in discover_generators(raw):
        groups["real"] += _read_images(list_class_images(raw / gen / split / "nature")[:max_per_class])
        groups[gen] = _read_images(list_class_images(raw / gen / split / "ai")[:max_per_class])
    shape = next((images[0].shape for images in groups.values() if images), None)
    return {
        name: mean_log_spectrum([im for im in images if im.shape == shape])
        for name, images in groups.items()
        if any(im.shape == shape for im in images)
    }


def _read_images(paths: Iterable[Path]) -> list[np.ndarray]:
    """Decoded images; an unreadable file is skipped with a warning (the ``data`` policy)."""
    images, skipped = [], []
    for path in paths:
        try:
            images.append(np.asarray(load_image(path)))
        except ImageLoadError as err:
            skip_bad_file(err, path, skipped, stacklevel=3)
    warn_skipped(skipped, stacklevel=3)
    return images
