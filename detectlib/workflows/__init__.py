"""What a lesson or a command needs that trains *and* evaluates: the detectors notebooks 04 to 06 use
(``detectors``), comparisons repeated over seeds (``seeded``), transfer across generators (``transfer``), the embedding of a whole dataset (``embedding``), and
the speed measures of ``make bench`` (``bench``), and what the
``full`` lessons need on Colab (``colab_plan``)."""

from __future__ import annotations

import lazy_loader

# The public names of each module, reachable as ``detectlib.workflows.<name>``; a module loads on first use, so a
# command line imports only what its job needs (scientific Python's SPEC 1, ``lazy_loader``).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["bench", "colab_plan", "detectors", "embedding", "seeded", "transfer", "wild_eval"],
    submod_attrs={
        "bench": [
            "HEAD_EPOCH_VECTORS", "GOALS", "machine", "bench_entry", "record_results", "full_size_photos",
            "draft_decode_speedup",
            "photo_pipeline_ratio", "encoder_variants", "demo_detectors", "draft_auc_shift",
            "embed_speedup", "head_epoch_memory", "data_wait_share", "train_images_per_s", "wall_seconds",
            "run_bench", "pipeline_vs_model_throughput", "infer_latency_vs_import_floor",
            "head_epoch_seconds", "cache_speedup",
        ],
        "colab_plan": [
            "FULL_REHEARSAL_JSON", "README_MARKERS", "T4_NAME", "T4_BYTES", "COLAB_RAM_BYTES", "COLAB_RAM_RESERVED",
            "SCORING_BATCH", "plan_for_colab", "fits_colab_ram", "full_markdown",
        ],
        "detectors": [
            "TRANSFER_DETECTOR", "RESIDUAL_DETECTOR", "TRAINING_FREE_DETECTOR", "ensure_detectors",
            "residual_checkpoint", "finetuned_checkpoint",
        ],
        "embedding": [
            "EmbedReport", "embed_dataset",
        ],
        "seeded": [
            "SeededRuns", "run_name", "seed_dir", "seed_runs", "judge_over_seeds", "train_over_seeds",
            "EncoderComparison", "compare_encoders_over_seeds", "compare_seeded_detectors",
        ],
        "transfer": [
            "CrossGenerator", "cross_generator_matrix", "LeaveGeneratorsOut", "read_content_control",
            "leave_generators_out",
        ],
        "wild_eval": [
            "SIGMAS", "DRAWS", "LAYERS", "training_free_path", "TrainingFreeTuning", "tune_training_free", "read_sweep",
            "WildRun", "evaluate_on_wild", "noise_drift", "wild_robustness", "read_robustness",
        ],
    },
)
