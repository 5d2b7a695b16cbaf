"""Detectors: one interface (``Detector``), one registry of kinds, self-describing checkpoints.

``detector`` (the interface, the registry and ``load_detector``), ``checkpoints`` (safe save and load),
``classifier`` (timm classifiers, kind ``convnext``), ``clip_head`` (the frozen-encoder head, kind ``clip_head``,
with its own score <-> p(ai)), ``encoders`` (frozen CLIP and timm encoders), ``clip_onnx`` (OpenAI's CLIP ViT-B/16
rebuilt from the INT8 ONNX in a wheel), ``onnx_int8`` (that ONNX file read, dequantised, its INT8 arithmetic
simulated), ``wheels`` (a wheel kept as an archive, one member read out of it), ``features`` (the embedding cache
of a frozen encoder), ``training_free`` (noise sensitivity of a frozen CLIP, RIGID: kind ``training_free``, no
training data, a JSON file).
Importing the package registers the three kinds.
"""

from __future__ import annotations

import lazy_loader

# Each detector kind registers itself in ``detector.DETECTORS`` when its module runs: load all three now.
from . import classifier, clip_head, training_free  # noqa: F401

# The public names of each module, reachable as ``detectlib.models.<name>``; a module loads on first use, so a
# command line imports only what its job needs (scientific Python's SPEC 1, ``lazy_loader``).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["checkpoints", "classifier", "clip_head", "clip_onnx", "detector", "encoders",
        "features", "memory", "onnx_int8", "training_free", "wheels"],
    submod_attrs={
        "checkpoints": [
            "CHECKPOINT_FORMAT", "DETECTORS", "CheckpointError", "save_checkpoint", "load_checkpoint",
            "check_compatible", "describe_bare_state_dict", "latest_checkpoint",
        ],
        "classifier": [
            "WHEEL_WEIGHTS", "PretrainedWeightsError", "quiet_transformers", "create_timm_model",
            "weights_source", "normalisation_of", "convnext_from_checkpoint", "TimmDetector",
        ],
        "clip_head": [
            "REFERENCE_WEIGHTS", "CLIP_BY_WIDTH", "ClipHeadDetector", "LogitOutput", "make_head", "score_from_logit",
            "p_ai_from_score", "score_from_p_ai", "head_p_ai", "FrozenHeadDetector", "grpClasificador",
        ],
        "memory": [
            "CONTEXT_BYTES", "HEADROOM", "GB", "GpuTooSmallError", "MemoryNeed", "training_need", "inference_need",
            "gpu_memory_bytes", "batch_for_gpu",
        ],
        "clip_onnx": [
            "HUB_ID", "HUB_REVISION", "FORMAT_VERSION", "PROVENANCE_FILE", "PROVENANCE", "ENCODERS_ENV", "ORT_HINT",
            "IMAGE_SIZE", "clip_b16_config", "image_processor", "dequantized_state_dict", "model_from_onnx",
            "encoder_folder", "rebuild_from_wheel", "load_model", "onnx_image_embeds",
        ],
        "detector": [
            "Detector", "register", "load_detector",
        ],
        "encoders": [
            "TINY_CLIP", "TINY_CLIP_CONFIG", "RANDOM_SUFFIX", "INIT_SEED", "weights_fingerprint",
            "FrozenEncoder", "PRECISIONS", "native_bf16_cpu", "ClipVisionEncoder", "TimmEncoder",
            "clip_l14_config", "make_encoder", "random_counterpart", "ImagesLike",
        ],
        "features": [
            "CACHE_FORMAT", "SHARD_SUFFIX", "CacheFormatError", "CacheStats", "EmbeddedSet",
            "file_digest", "embedding_cache", "store_prefix", "new_shard_id", "write_shard", "read_shard",
            "EmbeddingStore", "readable_samples", "encode_files", "embed_samples", "embed_folder",
            "embed_generators", "pca_2d", "PixelDataset",
        ],
        "onnx_int8": [
            "WHEEL", "ONNX_MEMBER", "ONNX_SHA256", "ONNX_HINT", "NUM_LAYERS", "LINEAR_NAMES", "LAYER_NORM_EPS",
            "onnx_bytes", "load_onnx", "QuantizedMatMul", "dequantize", "initializers", "check_graph",
            "quantized_matmuls", "dynamic_quantize_linear", "simulated_int8",
        ],
        "training_free": [
            "POOLER", "MAX_BATCH", "clip_encoder", "check_layer", "noise_directions", "draw_distances",
            "noise_sensitivity", "NoiseSensitivity", "training_free_checkpoint", "save_training_free",
            "TrainingFreeDetector", "youden_threshold", "tune_noise_sensitivity",
        ],
        "wheels": [
            "WHEELS_ENV", "wheels_dir", "wheel_archive", "read_wheel_member",
        ],
    },
)
