"""What the `full` lessons need on Colab, from measurement: the rehearsal's time and memory per lesson, and what
a T4 holds (the "full profile" block of docs/profiles.md, written by ``python -m detectlib.readme --full``).

Two sources, each measured, never typed: ``make test-full`` records every cell's seconds and the notebook kernel's
peak memory (``results/full_rehearsal.json``, CPU, random weights); ``models.memory`` measures, on the CPU, what
training ConvNeXt-T and embedding with CLIP ViT-L/14 hold on a GPU, and ``batch_for_gpu`` (the function
``train_convnext`` calls on a GPU) says which batch the lessons then run at on a T4. Colab's sizes are stated
assumptions (``T4_BYTES``, ``COLAB_RAM_BYTES``, ``COLAB_RAM_RESERVED``), not measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config import get_profile
from ..models.encoders import clip_l14_config
from ..models.memory import GB, MemoryNeed, batch_for_gpu, inference_need, training_need

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig

FULL_REHEARSAL_JSON = "full_rehearsal.json"
# The full-profile block's markers (the name is historical: the block lives in docs/profiles.md, see readme.HOMES).
README_MARKERS = ("<!-- full-rehearsal:start -->", "<!-- full-rehearsal:end -->")
T4_NAME = "Tesla T4"
T4_BYTES = 15101 * 2**20  # what torch reports for a Colab T4 (16 GB of GDDR6, ECC on): 15101 MiB
COLAB_RAM_BYTES = int(12.7e9)  # the free runtime's RAM as Colab's resource panel shows it
COLAB_RAM_RESERVED = int(1.5e9)  # left to the runtime's own services and the DataLoader's worker processes
SCORING_BATCH = 64  # evaluation.scoring's default batch for scoring and embedding folders


def _need_row(need: MemoryNeed, batch: int, note: str | None = None) -> dict[str, Any]:
    return {"job": need.what, "fixed_gb": round(need.fixed_bytes / GB, 2),
            "per_image_mb": round(need.per_image_bytes / 1e6, 1), "batch": batch,
            "estimated_gb": round(need.bytes_at(batch) / GB, 2), "largest_batch_on_t4": need.largest_batch(T4_BYTES),
            **({"note": note} if note else {})}


def plan_for_colab(profile: str = "full", clip_config: CLIPVisionConfig | None = None) -> dict[str, Any]:
    """The batches the ``profile`` lessons run at on a T4 and the GPU memory each job needs, measured on this
    machine with the profile's own architectures (random weights: memory does not depend on their values).
    A T4 computes float16, not bfloat16; both are 2 bytes, so the CPU's bfloat16 autocast measures the same sizes.
    ``clip_config``: the frozen encoder's image tower (default ``full``'s, CLIP ViT-L/14); the tests pass a tiny one."""
    import timm
    from transformers import CLIPVisionModelWithProjection

    prof = get_profile(profile)
    convnext = timm.create_model(prof.convnext_model, num_classes=2, **prof.convnext_kwargs)
    train = training_need(convnext, prof.img_size, what=f"training {prof.convnext_model} at {prof.img_size} px")
    batch, note = batch_for_gpu(train, prof.batch_size, T4_BYTES, T4_NAME, explicit=False)
    rows = [_need_row(train, batch, note)]
    del convnext
    config = clip_config or clip_l14_config()
    encoder = CLIPVisionModelWithProjection(config)
    embed = inference_need(encoder, config.image_size,
                           what=f"embedding and scoring with the frozen {prof.encoder} at {config.image_size} px")
    rows.append(_need_row(embed, SCORING_BATCH))
    return {"profile": prof.name, "gpu": {"name": T4_NAME, "bytes": T4_BYTES}, "ram_bytes": COLAB_RAM_BYTES,
            "ram_reserved_bytes": COLAB_RAM_RESERVED, "jobs": rows,
            "images": {"samples_per_class": prof.samples_per_class, "epochs": prof.epochs, "workers": prof.workers}}


def fits_colab_ram(peak_mb: float | None) -> bool | None:
    """Whether a kernel that peaked at ``peak_mb`` fits the free runtime's RAM after what it reserves."""
    return None if peak_mb is None else peak_mb * 1e6 <= COLAB_RAM_BYTES - COLAB_RAM_RESERVED


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _outcome(rehearsal: Mapping[str, Any]) -> str:
    """Every cell passed; or which cells failed and which requested notebooks the run never reached."""
    failed = sum(entry["cells_failed"] for entry in rehearsal["notebooks"].values())
    missing = [name for name in rehearsal.get("requested", ()) if name not in rehearsal["notebooks"]]
    if not failed and not missing:
        return "every cell passed"
    parts = [f"{failed} cell{'s' * (failed != 1)} failed"] if failed else []
    if missing:
        parts.append("not reached when this record was taken: "
                     + ", ".join(f"`{name.removeprefix('notebooks/')}`" for name in missing))
    return "; ".join(parts)


def full_markdown(rehearsal: Mapping[str, Any], plan: Mapping[str, Any]) -> str:
    """The full-profile block of docs/profiles.md: one rehearsal's time and memory per notebook, and the T4 plan
    beside it."""
    machine = rehearsal["machine"]
    notebooks = rehearsal["notebooks"]
    total = sum(entry["seconds"] for entry in notebooks.values())
    ram_budget = (plan["ram_bytes"] - plan["ram_reserved_bytes"]) / GB
    commit = f" of commit `{rehearsal['commit']}`" if rehearsal.get("commit") else ""
    lines = [f"One `make test-full`{commit}, {rehearsal['date'][:10]}, on {machine.get('model', 'a CPU')} with "
             f"{machine.get('cores', '?')} cores and no GPU: {len(notebooks)} notebooks in {_minutes(total)}, "
             f"{_outcome(rehearsal)}. Time is this CPU's (a GPU "
             "runs the heavy cells many times faster); memory is the notebook kernel's peak, which on Colab must "
             f"fit the free runtime's {plan['ram_bytes'] / GB:.1f} GB of RAM less {plan['ram_reserved_bytes'] / GB:.1f}"
             f" GB for its own services and data workers ({ram_budget:.1f} GB).", "",
             "| notebook | cells | time here | peak RAM | fits Colab's RAM |", "| --- | --- | --- | --- | --- |"]
    # notebooks run in order: when some were not reached, the last one recorded was still running
    running = list(notebooks)[-1] if any(n not in notebooks for n in rehearsal.get("requested", ())) else None
    for name, entry in notebooks.items():
        peak = entry["peak_rss_mb"]
        fits = fits_colab_ram(peak)
        cells = (f"{entry['cells_passed']}" + (f" ({entry['cells_failed']} failed)" if entry["cells_failed"] else "")
                 + (", still running when recorded" if name == running else ""))
        lines.append(f"| `{name.removeprefix('notebooks/')}` | {cells} | {_minutes(entry['seconds'])} | "
                     f"{'-' if peak is None else f'{peak / 1e3:.1f} GB'} | "
                     f"{'-' if fits is None else ('yes' if fits else '**no**')} |")
    gpu, images = plan["gpu"], plan["images"]
    lines += ["", f"The lessons' comparisons draw {images['samples_per_class']} images per generator, split and class "
              f"from your data, train {images['epochs']} epochs, and load images with up to {images['workers']} "
              "worker processes (never more than the runtime has CPUs: 2 on a free Colab).",
              "", f"On a {gpu['name']} ({gpu['bytes'] / 2**30:.1f} GiB as torch reports it), measured on this CPU "
              "with `models.memory` (half precision, as autocast runs on a GPU; the CUDA context and allocator "
              "slack added as stated there):", "",
              "| job | fixed | per image | the lessons' batch | estimated peak | largest batch on a T4 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for job in plan["jobs"]:
        lines.append(f"| {job['job']} | {job['fixed_gb']:.2f} GB | {job['per_image_mb']:.1f} MB | {job['batch']} | "
                     f"{job['estimated_gb']:.1f} GB | {job['largest_batch_on_t4']} |")
    return "\n".join(lines)
