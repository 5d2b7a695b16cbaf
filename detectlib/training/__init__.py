"""Training: one loop for every detector (``loop.fit``), the ConvNeXt recipe (``convnext``), the frozen-encoder
head (``clip_head``), and what ``torchrun`` needs (``distributed``)."""

from __future__ import annotations

import lazy_loader

# The public names of each module, reachable as ``detectlib.training.<name>``; a module loads on first use, so a
# command line imports only what its job needs (scientific Python's SPEC 1, ``lazy_loader``).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["checkpointing", "clip_head", "convnext", "distributed", "loop"],
    submod_attrs={
        "checkpointing": [
            "clear_checkpoints", "EpochCheckpoints",
        ],
        "clip_head": [
            "reference_metrics", "format_reference_metrics", "bce_on_logit", "predict_class",
            "val_metrics", "ClipHeadResult", "train_head", "train_clip_head", "compare_encoders",
            "comparison_folder",
        ],
        "convnext": [
            "PRELOAD_LIMIT_BYTES", "TrainResult", "make_loaders", "train_convnext", "fit_kind",
            "fit_verdict", "OverfitRecipe", "overfit_recipe", "comparison_table",
        ],
        "distributed": [
            "DistContext", "distributed_context", "shard", "all_reduce_sum", "all_gather_cat",
            "set_epoch", "wrap_model", "wait_for_main",
        ],
        "loop": [
            "LossFn", "History", "epoch_seed", "autocast_dtype", "fit",
        ],
    },
)
