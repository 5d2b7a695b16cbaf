"""Images and folders: everything before a model sees a pixel.

``images`` (the one loader, its reduced JPEG decode, and the one rule for a bad file: warn and skip, or raise),
``layout`` (the reference's ``split/{ai,nature}`` folders, the one listing of them, generators, the resampling
control), ``transforms`` and ``datasets`` (what training reads), ``tools`` (``create_samples`` /
``create_full_all``), ``audit`` (format and size shortcuts), ``realdata`` (CIFAKE and Tiny-GenImage), ``demo``
and ``esrgan`` (the demo dataset's photos and generators), ``wild`` (real text-to-image outputs and real photos,
processed alike) and ``wild_sources`` (its source table and reading each file out of its package).
"""

from __future__ import annotations

import lazy_loader

# The public names of each module, reachable as ``detectlib.data.<name>``; a module loads on first use, so a
# command line imports only what its job needs (scientific Python's SPEC 1, ``lazy_loader``).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["audit", "datasets", "demo", "esrgan", "images", "layout", "packages", "rcc", "realdata",
        "tools", "transforms", "wild", "wild_sources"],
    submod_attrs={
        "audit": [
            "SHARE_GAP", "BLOCKINESS_GAP", "LOSSY_FORMATS", "SIZE_GAP", "QUALITY_GAP", "jpeg_quality", "blockiness", "AuditReport",
            "audit_dataset", "reencode_class", "sample_thumbnails",
        ],
        "datasets": [
            "ImageFolderDataset", "load_sample_or_next", "image_datasets",
        ],
        "demo": [
            "MIN_SCALE", "MAX_SCALE", "FLAT_STD", "ROLES", "PHOTO_SPLIT", "SKIMAGE_PHOTOS", "real_photos",
            "Cell", "Crop", "photo_cells", "PatchPool", "GeneratorFamily", "AutoencoderFamily",
            "DCGANFamily", "default_families", "build_demo_dataset", "ensure_demo_dataset", "source_groups",
            "mean_log_spectrum", "dataset_spectra",
        ],
        "esrgan": [
            "MODEL_NAME", "WHEEL", "INSTALL_HINT", "SCALE", "RESIDUAL_SCALE", "LEAKY_SLOPE",
            "EsrganUnavailable", "NcnnFormatError", "ResidualDenseBlock", "RRDB", "RRDBNet", "NcnnLayer",
            "NcnnConv", "parse_param", "read_ncnn_convolutions", "ncnn_state_dict", "load_realesrgan_x4",
            "downscale_x4", "bicubic_x4", "upscale_x4", "EsrganFamily", "build_resampling_control",
        ],
        "images": [
            "IMAGE_EXTENSIONS", "ImageLoadError", "SkippedFileWarning", "is_image_file", "skip_summary",
            "skip_bad_file", "warn_skipped", "check_file", "to_rgb", "DRAFT_FORMATS", "full_decode",
            "decode_mode", "decode_side_of", "load_image",
        ],
        "layout": [
            "SPLITS", "DataDirs", "Sample", "LayoutError", "list_class_images", "extra_class_folders",
            "check_layout", "class_samples", "dataset_dirs", "split_samples", "dataset_samples",
            "discover_generators", "CONTROL_NAME", "control_dir",
        ],
        "packages": [
            "PACKAGES_ENV", "REGISTRIES", "VERSION_SEPARATORS", "FETCH_TIMEOUT_S", "ERROR_PREFIXES", "packages_cache",
            "PackageRef", "PackageFetcher", "missing_hint",
        ],
        "rcc": [
            "RccError", "list_entries", "read_entry", "extract",
        ],
        "realdata": [
            "CIFAKE_KAGGLE", "CIFAKE_PAGE", "CIFAKE_URL", "TINY_GENIMAGE_REPO", "TINY_GENIMAGE_LABELS",
            "TINY_GENIMAGE_GENERATORS", "SPLIT_NAMES", "CLASS_NAMES", "CHUNK", "TIMEOUT_S", "USER_AGENT",
            "NETWORK_ERRORS", "DownloadError", "ChecksumError", "UnsafeArchiveError", "ConflictError",
            "sha256sum", "verify_file", "download", "extract_archive", "ConvertReport", "convert_cifake",
            "convert_tiny_genimage", "how_to_bring_data", "fetch_cifake", "fetch_tiny_genimage",
        ],
        "tools": [
            "CopySummary", "copy_file_safely", "create_samples", "create_full_all",
        ],
        "transforms": [
            "IMAGENET_MEAN", "IMAGENET_STD", "INPUTS", "RESIDUAL_GAIN", "residual", "ImageTransform",
            "build_transforms",
        ],
        "wild": [
            "SETTINGS", "MANIFEST_COLUMNS", "RESAMPLE", "OUT_FORMAT",
            "OUT_QUALITY", "OUT_SUBSAMPLING", "OUT_EXT", "VAL_SHARE", "NEAR_DUPLICATE_BITS", "QUALITY_SAMPLE",
            "decode", "estimate_webp_quality",
            "history_side", "give_preview_history", "common_steps", "difference_hash", "merge_near_duplicates",
            "split_of", "category_quotas", "select", "manifest_rows", "build_wild", "summarise_sources",
            "WildImage", "load_wild", "category_table", "history_warnings", "audit_wild",
        ],
        "wild_sources": [
            "SOURCES_CSV", "CATEGORIES", "RCC_SEPARATOR", "Source", "read_sources", "installed_file",
            "read_source_bytes",
        ],
    },
)
