"""``python -m detectlib.gpu_check`` (``make gpu-check``): what a GPU user of the kit feels, in images/s and memory.

Mixed-precision training of ConvNeXt-T, CLIP ViT-L/14 image embedding, and DDP training across every visible GPU
(``torchrun``), each with its peak GPU memory, all on random tensors and random weights (offline, nothing to
download). The entries join ``make bench``'s ``results/bench.json`` with the same writer and format (value,
details, machine and date) plus the GPU's name. Without CUDA it prints one line and exits 0, so the command is safe
to run anywhere. Every size is a parameter, so the tests run the same code on the CPU with tiny models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import cpu_capabilities, get_paths, get_profile
from .labels import format_table
from .models.classifier import create_timm_model
from .models.encoders import clip_l14_config
from .models.memory import training_need
from .training.distributed import all_reduce_sum, distributed_context, wrap_model
from .training.loop import autocast_dtype
from .workflows.bench import bench_entry, record_results

if TYPE_CHECKING:
    import torch
    from transformers import CLIPVisionConfig

TRAIN_KEY = "gpu_train_images_per_s"
CLIP_KEY = "gpu_clip_embed_images_per_s"
DDP_KEY = "gpu_ddp_train_images_per_s"
NO_CUDA = ("gpu-check: no CUDA device found, nothing measured; run `make gpu-check` "
           "(python -m detectlib.gpu_check) on a machine with an NVIDIA GPU.")


def device_name(device: torch.device) -> str:
    """The GPU's name (``NVIDIA H200``), or the CPU's model: every entry says what it was measured on."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_capabilities()["model"]


def precision_name(dtype: torch.dtype | None) -> str:
    """How the entries and the table name a precision."""
    import torch

    return {None: "float32", torch.bfloat16: "bfloat16 autocast",
            torch.float16: "float16 autocast + GradScaler"}[dtype]


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work: without it a timer measures kernel launches, not the computation."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    """Start a measurement's peak memory at what is allocated now (its model's weights count, the last one's
    activations do not)."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    """Peak GPU memory since ``_reset_peak`` in MiB; None on the CPU, where torch keeps no such count."""
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _seconds(step: Callable[[], object], device: torch.device, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed ones (cuDNN's algorithm search, the
    allocator's first blocks and autocast's weight casts land in the warm-up)."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def train_rate(model: torch.nn.Module, device: torch.device, *, image_size: int, batch_size: int, steps: int,
               warmup: int) -> dict[str, Any]:
    """Images/s of forward + backward + AdamW step on one random batch (``model`` already on ``device``, maybe
    under DDP), mixed precision as ``training.loop.autocast_dtype`` picks it, and the peak memory."""
    import torch
    import torch.nn.functional as F

    _reset_peak(device)
    model.train()
    dtype = autocast_dtype(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    labels = torch.randint(0, 2, (batch_size,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    seconds = _seconds(step, device, warmup, steps)
    return {"images_per_s": batch_size * steps / seconds, "peak_memory_mb": _peak_mb(device),
            "precision": precision_name(dtype)}


def embed_rate(model: torch.nn.Module, device: torch.device, *, image_size: int, batch_size: int, steps: int,
               warmup: int) -> dict[str, Any]:
    """Images/s of a CLIP image tower's embeddings (``image_embeds``) under inference mode and autocast, as the
    kit's embedding cache computes them, and the peak memory."""
    import torch

    _reset_peak(device)
    model.eval()
    dtype = autocast_dtype(device)
    pixels = torch.randn(batch_size, 3, image_size, image_size, device=device)

    def step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            model(pixel_values=pixels)

    seconds = _seconds(step, device, warmup, steps)
    return {"images_per_s": batch_size * steps / seconds, "peak_memory_mb": _peak_mb(device),
            "precision": precision_name(dtype)}


def measure(device: str | torch.device = "cuda", *, image_size: int = 224, batch_size: int = 64, steps: int = 20,
            warmup: int = 3, convnext: Callable[[], torch.nn.Module] = lambda: create_timm_model("convnext_tiny"),
            clip_config: CLIPVisionConfig | None = None) -> dict[str, dict[str, Any]]:
    """ConvNeXt training and CLIP embedding on one device, as bench entries keyed ``TRAIN_KEY`` and ``CLIP_KEY``.

    ``convnext`` builds the classifier (2 classes, random init); ``clip_config`` is the image tower's config
    (default ``clip_l14_config()``), whose own ``image_size`` CLIP runs at (its position embeddings fix it);
    ``image_size`` is ConvNeXt's side. The tests pass tiny ones and ``device="cpu"``."""
    import torch
    from transformers import CLIPVisionModelWithProjection

    device = torch.device(device)
    clip_config = clip_config or clip_l14_config()
    name = device_name(device)
    sizes = {"batch_size": batch_size, "steps": steps, "warmup": warmup}

    torch.manual_seed(0)
    model = convnext()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    # the kit's CPU-measured estimate (models.memory, what picks the lessons' batch on a GPU) beside the real peak
    estimate = training_need(model, image_size, amp=autocast_dtype(device) is not None).bytes_at(batch_size) / 2**20
    train = train_rate(model.to(device), device, image_size=image_size, **sizes)
    del model  # its weights go before CLIP's peak is taken (the optimizer went with train_rate)
    entries = {TRAIN_KEY: bench_entry(TRAIN_KEY, train.pop("images_per_s"), device=name, **train,
                                      estimated_peak_mb=round(estimate, 1), image_size=image_size, params_m=params,
                                      **sizes)}

    torch.manual_seed(0)
    clip = CLIPVisionModelWithProjection(clip_config).to(device)
    embed = embed_rate(clip, device, image_size=clip_config.image_size, **sizes)
    entries[CLIP_KEY] = bench_entry(CLIP_KEY, embed.pop("images_per_s"), device=name, **embed,
                                    image_size=clip_config.image_size, hidden_size=clip_config.hidden_size,
                                    layers=clip_config.num_hidden_layers, patch_size=clip_config.patch_size, **sizes)
    return entries


def ddp_worker(model_name: str, *, image_size: int, batch_size: int, steps: int, warmup: int,
               result: Path) -> None:
    """One ``torchrun`` process of the DDP measure: ``train_rate`` of ``model_name`` under DistributedDataParallel
    (nccl on GPUs, through the kit's own ``training.distributed``); rank 0 writes the total images/s of all
    processes and the mean peak memory per GPU to ``result``. Without torchrun it is the one-process measure."""
    import torch
    import torch.distributed as dist

    ctx = distributed_context()
    device = torch.device("cuda", ctx.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(0)
    model = wrap_model(create_timm_model(model_name).to(device), device, ctx)
    rate = train_rate(model, device, image_size=image_size, batch_size=batch_size, steps=steps, warmup=warmup)
    total, peak = all_reduce_sum([rate["images_per_s"], rate["peak_memory_mb"] or 0.0], device, ctx)
    if ctx.is_main:
        result.write_text(json.dumps({
            "images_per_s": total, "gpus": ctx.world_size, "device": device_name(device),
            "peak_memory_mb_per_gpu": peak / ctx.world_size if device.type == "cuda" else None,
            "precision": rate["precision"], "model": model_name, "image_size": image_size,
            "batch_size_per_gpu": batch_size, "steps": steps, "warmup": warmup}))
    if dist.is_initialized():
        dist.destroy_process_group()


def ddp_entry(model_name: str, *, gpus: int, device: str, single_gpu_images_per_s: float, image_size: int,
              batch_size: int, steps: int, warmup: int) -> dict[str, Any]:
    """DDP training on all ``gpus`` through ``torchrun`` as a bench entry, with its scaling against ``gpus`` times
    the one-GPU rate; with a single GPU there is nothing to measure and the entry says so rather than fake it."""
    if gpus < 2:
        return bench_entry(DDP_KEY, None, skipped=f"{gpus} GPU: DDP not exercised", device=device, gpus=gpus)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "ddp.json"
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                        "-m", "detectlib.gpu_check", "--ddp-worker", "--model", model_name,
                        "--image-size", str(image_size), "--batch-size", str(batch_size), "--steps", str(steps),
                        "--warmup", str(warmup), "--result", str(result)], check=True)
        found = json.loads(result.read_text())
    total = found.pop("images_per_s")
    return bench_entry(DDP_KEY, total, **found, scaling=total / (gpus * single_gpu_images_per_s))


def table(entries: dict[str, dict[str, Any]]) -> str:
    """The printed summary: one row per measure, a skipped one showing why."""
    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [{"measure": key, "images/s": entry.get("skipped") or shown(entry["value"]),
             "peak MiB": shown(entry.get("peak_memory_mb", entry.get("peak_memory_mb_per_gpu"))),
             "precision": entry.get("precision", "-")} for key, entry in entries.items()]
    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    """Measure, record and print on CUDA; one line and exit 0 without it (nothing to measure is not an error)."""
    parser = argparse.ArgumentParser(prog="python -m detectlib.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="convnext_tiny", help="timm classifier to train (random init)")
    parser.add_argument("--image-size", type=int, default=224, help="the classifier's input side in pixels")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (per GPU under DDP)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measure")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--profile", default="demo", help="whose results folder holds bench.json (default: demo)")
    parser.add_argument("--out", default=None, help="JSON output (default: <results>/bench.json)")
    parser.add_argument("--ddp-worker", action="store_true", help="internal: one torchrun process of the DDP measure")
    parser.add_argument("--result", default=None, help="internal: where the DDP worker's rank 0 writes")
    args = parser.parse_args(argv)
    if args.ddp_worker and args.result is None:
        parser.error("--ddp-worker needs --result")
    sizes = {"image_size": args.image_size, "batch_size": args.batch_size, "steps": args.steps,
             "warmup": args.warmup}
    if args.ddp_worker:
        ddp_worker(args.model, result=Path(args.result), **sizes)
        return 0

    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    device = torch.device("cuda")
    entries = measure(device, convnext=partial(create_timm_model, args.model), **sizes)
    entries[DDP_KEY] = ddp_entry(args.model, gpus=torch.cuda.device_count(), device=device_name(device),
                                 single_gpu_images_per_s=entries[TRAIN_KEY]["value"], **sizes)
    profile = get_profile(args.profile)
    out = record_results(entries, Path(args.out) if args.out else get_paths(profile).results / "bench.json", profile.name)
    print(f"{device_name(device)} x{torch.cuda.device_count()}, model {args.model}, batch {args.batch_size}")
    print(table(entries))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
