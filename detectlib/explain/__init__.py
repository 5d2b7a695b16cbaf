"""Explanations: Grad-CAM written by hand (``cam``) and the deletion check that asks whether a heatmap is
evidence or decoration (``deletion``)."""

from __future__ import annotations

import lazy_loader

# The public names of each module, reachable as ``detectlib.explain.<name>``; a module loads on first use, so a
# command line imports only what its job needs (scientific Python's SPEC 1, ``lazy_loader``).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["cam", "deletion"],
    submod_attrs={
        "cam": [
            "DEFAULT_CONVNEXT_LAYER", "CONVNEXT_MARKER", "VIT_MARKER", "LayerError", "available_layers",
            "suggested_layers", "default_layer", "resolve_layer", "tokens_to_grid", "normalise",
            "CamResult", "grad_cam", "class_index", "probability", "Explanation", "explain",
            "CAM_METHODS", "compare_cam_methods", "CAM_METHOD_TRAITS", "ASSUME_NONNEGATIVE", "method_agreement",
            "agreement", "explain_disagreement", "heatmap_rgb", "overlay", "sample_images",
        ],
        "deletion": [
            "DeletionResult", "DeletionCheck", "hottest_mask", "deletion_masks", "deletion_check", "deletion_checks",
            "deletion_faithful", "deletion_verdict",
        ],
    },
)
