"""``make bench``: the kit measured against its own ceilings, as ratios taken within one run.

On 2 CPU cores the ceiling is the model's own forward and backward; everything around it (decoding, resizing,
data loading, recomputing frozen features, process start) is overhead. Absolute seconds vary between machines,
so each goal is a ratio of two things timed in the same run, and every entry records the machine and the date.

``python -m detectlib.bench`` measures in the ``demo`` profile; ``--quick`` runs a tiny configuration (what the
tests use); ``--full`` also times a fresh clone's set-up, ``make demo`` and ``make test`` (about 20 minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Profile, get_paths, get_profile

GOALS: dict[str, tuple[str, float]] = {  # key -> (direction, goal)
    "clip_cache_speedup": (">=", 50.0),
    "pipeline_vs_model_throughput": (">=", 0.85),
    "data_wait_share": ("<=", 0.10),
    "infer_cli_latency_ratio": ("<=", 1.25),
    "demo_wall_s": ("<=", 900.0),
    "test_wall_s": ("<=", 600.0),
}


def machine() -> dict[str, Any]:
    """What every entry records: CPU count, torch threads, versions and the date."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _entry(key: str, value: Any, **details: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": value, **details, "machine": machine()}
    if key in GOALS and isinstance(value, int | float):
        direction, goal = GOALS[key]
        entry["goal"] = f"{direction} {goal:g}"
        entry["met"] = bool(value >= goal if direction == ">=" else value <= goal)
    return entry


def _demo_checkpoint(profile: Profile, raw: Path) -> Path:
    """A ConvNeXt checkpoint of the profile to time inference with: the demo's own if present, else one epoch."""
    from .train import train_convnext

    best = get_paths(profile).models / "best.pth"
    if best.is_file():
        return best
    generator = sorted(p for p in raw.iterdir() if (p / "train").is_dir())[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = train_convnext(generator, profile=profile, epochs=1, out_dir=tmp, figures_dir=tmp, progress=False)
        kept = get_paths(profile).results / "bench" / "convnext.pth"
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(result.last_checkpoint, kept)
    return kept


def data_wait_share(profile: Profile, data_dir: Path, steps: int = 20) -> dict[str, float]:
    """Share of a training step spent waiting for the next batch, with the profile's own loaders and model."""
    import torch

    from .data import image_datasets
    from .models import create_timm_model, normalisation_of
    from .train import make_loaders

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

    from .models import create_timm_model

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


def run_bench(profile: Profile, *, full: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every measurement of ``make bench`` for one profile; ``full`` adds the whole-command wall times."""
    from .evaluate import infer_latency_vs_import_floor, pipeline_vs_model_throughput
    from .models import load_detector
    from .synth import ensure_demo_dataset
    from .train_clip_head import cache_speedup

    raw = ensure_demo_dataset(profile)
    generators = sorted(p for p in raw.iterdir() if (p / "train").is_dir() and not p.name.startswith("ALL"))
    results: dict[str, Any] = {}

    log("clip_cache_speedup: one head epoch recomputing embeddings vs from the cache")
    limit = 100 if profile.name != "smoke" else None
    results["clip_cache_speedup"] = _entry(
        "clip_cache_speedup", cache_speedup(generators, limit=limit, profile=profile),
        encoder=profile.encoder, images_per_class_split_generator=limit)

    log("pipeline_vs_model_throughput: decode + preprocess + model vs model alone")
    checkpoint = _demo_checkpoint(profile, raw)
    detector = load_detector(checkpoint, device="cpu")
    val_paths = sorted((generators[0] / "val").rglob("*.png"))[:256]
    quick = profile.name == "smoke"
    throughput = pipeline_vs_model_throughput(detector, val_paths, **({"repeats": 1, "min_seconds": 0.0} if quick else {}))
    results["pipeline_vs_model_throughput"] = _entry(
        "pipeline_vs_model_throughput", throughput["ratio"], **{k: v for k, v in throughput.items() if k != "ratio"})
    log(f"  pipeline {throughput['pipeline_img_s']:.0f} img/s, model alone {throughput['model_img_s']:.0f}, decoding "
        f"alone {throughput['decode_img_s']:.0f}: decoding in turn with the model caps the ratio at "
        f"{throughput['serial_ceiling']:.2f}")

    log("data_wait_share: waiting for data in a training step")
    wait = data_wait_share(profile, generators[0], steps=5 if quick else 20)
    results["data_wait_share"] = _entry("data_wait_share", wait["share"], **{k: v for k, v in wait.items()
                                                                             if k != "share"})

    log("infer_cli_latency_ratio: python -m detectlib.infer vs python -c 'import torch, timm'")
    latency = infer_latency_vs_import_floor(val_paths[0], checkpoint, runs=1 if quick else 3)
    results["infer_cli_latency_ratio"] = _entry("infer_cli_latency_ratio", latency["ratio"],
                                                floor_s=latency["floor_s"], infer_s=latency["infer_s"])

    log("train_images_per_s: ConvNeXt forward + backward at 64, 128, 224 px")
    sizes, model_name = ((32, 64), "convnext_atto") if profile.name == "smoke" else ((64, 128, 224), "convnext_tiny")
    results["train_images_per_s"] = _entry("train_images_per_s", train_images_per_s(sizes, model_name),
                                           model=model_name, batch_size=16)

    if full:
        root = get_paths(profile).root
        with tempfile.TemporaryDirectory() as tmp:
            clone = Path(tmp) / "detectlib"
            subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
            log("install_wall_s: make setup in a fresh clone")
            results["install_wall_s"] = _entry("install_wall_s", wall_seconds(["make", "setup"], clone))
            log("demo_wall_s: make demo in the fresh clone")
            results["demo_wall_s"] = _entry("demo_wall_s", wall_seconds(["make", "demo"], clone))
            log("test_wall_s: make test in the fresh clone")
            results["test_wall_s"] = _entry("test_wall_s", wall_seconds(["make", "test"], clone))

    results["peak_rss_mb"] = _entry(
        "peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        children_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return results


def format_table(results: dict[str, Any]) -> str:
    """The printed table: key, value, goal and whether it is met."""
    lines = [f"{'measure':<30} {'value':>28} {'goal':>10}  met", "-" * 76]
    for key, entry in results.items():
        value = entry["value"]
        shown = (", ".join(f"{k}: {v:.1f}" for k, v in value.items()) if isinstance(value, dict)
                 else f"{value:.3f}")
        met = {True: "yes", False: "NO"}.get(entry.get("met"), "")
        lines.append(f"{key:<30} {shown:>28} {entry.get('goal', ''):>10}  {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectlib.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="profile to measure (default: demo; smoke with --quick)")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (smoke profile) for the tests")
    parser.add_argument("--full", action="store_true", help="also time set-up, make demo and make test")
    parser.add_argument("--out", default=None, help="JSON output (default: <results>/bench.json)")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile or ("smoke" if args.quick else "demo"))
    results = run_bench(profile, full=args.full, log=lambda m: print(f"[bench] {m}", flush=True))
    out = Path(args.out) if args.out else get_paths(profile).results / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"profile": profile.name, "results": results}, indent=2) + "\n")
    print(format_table(results))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
