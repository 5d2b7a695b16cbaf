"""Evaluation: scores from detectors (``scoring``), metrics on them (``metrics``), the tables and verdicts the
lessons print (``reports``), verdicts repeated over seeds (``verdicts``) and how scores move under JPEG, resizing and blur (``robustness``)."""

from __future__ import annotations

import lazy_loader

# The public names of each module, reachable as ``detectlib.evaluation.<name>``; a module loads on first use, so a
# command line imports only what its job needs (scientific Python's SPEC 1, ``lazy_loader``).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["demo_run", "metrics", "predictions", "reports", "robustness", "scoring", "verdicts", "wild_report"],
    submod_attrs={
        "demo_run": [
            "DEMO_RUN_JSON", "TAKEAWAYS_HEADING", "README_MARKERS", "TEACHERS_MARKERS", "takeaways", "collect_run",
            "demo_markdown", "teachers_markdown", "replace_block",
        ],
        "metrics": [
            "THRESHOLD_RULES", "is_ai", "predict_labels", "accuracy", "classification_report",
            "confusion_at_threshold", "Rates", "rates_at", "Curve", "roc", "precision_recall", "roc_auc",
            "auc_standard_error", "group_bootstrap_ci", "auc_change_ci", "category_aucs", "balanced_auc", "tpr_at_fpr", "ThresholdChoice", "choose_threshold", "Reliability",
            "reliability", "expected_calibration_error", "summary",
        ],
        "predictions": [
            "Predictions", "score_paths", "find_images",
        ],
        "reports": [
            "trained_on", "TrainingData", "training_data", "per_generator_table", "split_val_test",
            "unchosen_scores", "honest_threshold", "threshold_report", "validation_threshold",
            "compare_detectors", "auc_band", "describe_auc", "auc_in_words", "CHANCE_WORDS", "wild_judge", "control_judge", "wild_table", "wild_generator_table",
        ],
        "robustness": [
            "Perturbation", "ROBUSTNESS_SWEEP", "robustness_sweep",
        ],
        "scoring": [
            "Scores", "score_folder", "score_control", "score_generators", "WildScores", "score_wild",
        ],
        "verdicts": [
            "UNSTABLE", "Repeated", "repeat", "compare_arms",
        ],
        "wild_report": [
            "WILD_JSON", "CONTENT_CONTROL_FACTOR", "ci_band", "wild_entry", "built_summary", "describe_entry",
            "trust_line", "write_wild_json", "read_wild_json", "entry_for", "README_START", "README_END",
            "wild_markdown", "replace_readme_block",
        ],
    },
)
