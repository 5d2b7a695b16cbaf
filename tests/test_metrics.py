"""Every metric against numbers worked out by hand, and a threshold that only validation can move.

The shared hand case: labels ai = 0, nature = 1 (ImageFolder order), ai is the positive class.

    image   0    1    2    3    4    5
    label   ai   ai   ai   nat  nat  nat
    p(ai)   .9   .6   .4   .7   .2   .1

At threshold 0.5 the flagged images are 0, 1, 3: TP 2, FN 1 (image 2), FP 1 (image 3), TN 2.
"""

import dataclasses

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from detectlib.evaluation import metrics

Y = [0, 0, 0, 1, 1, 1]
P = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1]


def test_predictions_follow_the_reference_rule_for_both_detectors():
    # ConvNeXt argmax: a tie (p = 0.5) goes to class 0, ai; the CLIP score 0 is p(ai) = 0.5 too.
    assert metrics.predict_labels([0.5, 0.49, 0.51, 1.0, 0.0]).tolist() == [0, 1, 0, 0, 1]
    assert metrics.predict_labels([0.3, 0.2], threshold=0.25).tolist() == [0, 1]


def test_confusion_at_threshold_rows_are_true_class_columns_predicted():
    assert metrics.confusion_at_threshold(Y, P).tolist() == [[2, 1], [1, 2]]
    assert metrics.confusion_at_threshold(Y, P, threshold=0.3).tolist() == [[3, 0], [1, 2]]


def test_classification_report_per_class_numbers_and_reference_text():
    report = metrics.classification_report(Y, P, output_dict=True)
    for name in ("ai", "nature"):  # precision 2/3, recall 2/3, F1 2/3, support 3 for both classes
        assert report[name]["precision"] == pytest.approx(2 / 3)
        assert report[name]["recall"] == pytest.approx(2 / 3)
        assert report[name]["f1-score"] == pytest.approx(2 / 3)
        assert report[name]["support"] == 3
    assert report["accuracy"] == pytest.approx(4 / 6)
    text = metrics.classification_report(Y, P)
    assert "          ai     0.6667    0.6667    0.6667         3" in text
    assert "      nature     0.6667    0.6667    0.6667         3" in text


def test_accuracy_and_rates_with_counts_as_the_clip_reference_prints_them():
    assert metrics.accuracy(Y, P) == pytest.approx(4 / 6)
    rates = metrics.rates_at(Y, P)
    assert (rates.tp, rates.fn, rates.tn, rates.fp) == (2, 1, 2, 1)
    assert rates.tpr == pytest.approx(2 / 3) and rates.tnr == pytest.approx(2 / 3) and rates.fpr == pytest.approx(1 / 3)
    reference = metrics.Rates(threshold=0.5, tp=99, fn=0, tn=94, fp=4)
    assert str(reference) == "True negative rate: 94 / 98 (95.92%)\nTrue positive rate: 99 / 99 (100.00%)"


def test_rates_of_a_one_class_set_are_nan_where_undefined():
    rates = metrics.rates_at([1, 1, 1, 1], [0.9, 0.1, 0.2, 0.3])  # a control: real photos only
    assert (rates.tn, rates.fp) == (3, 1) and rates.fpr == pytest.approx(0.25)
    assert np.isnan(rates.tpr)


def test_roc_auc_counts_correctly_ordered_pairs():
    # ai scores .9 .6 .4 vs nature .7 .2 .1: .9 beats 3, .6 beats 2, .4 beats 2 -> 7 of 9 pairs.
    curve = metrics.roc(Y, P)
    assert curve.area == pytest.approx(7 / 9)
    assert metrics.roc_auc(Y, P) == pytest.approx(7 / 9)
    assert curve.x[0] == 0 and curve.x[-1] == 1 and curve.y[-1] == 1
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.8]))  # one class: undefined, not an exception


def test_average_precision_is_the_mean_precision_at_each_fake_found():
    # Ranked: .9 ai (1/1), .7 nat, .6 ai (2/3), .4 ai (3/4) -> AP = (1 + 2/3 + 3/4) / 3 = 29/36.
    curve = metrics.precision_recall(Y, P)
    assert curve.area == pytest.approx(29 / 36)
    assert curve.x.max() == 1  # recall reaches 1


def test_tpr_at_fpr_is_the_best_recall_under_the_false_positive_budget():
    # FPR 0 allows only thresholds above .7: only image 0 is caught -> 1/3.
    assert metrics.tpr_at_fpr(Y, P, 0.05) == pytest.approx(1 / 3)
    # FPR up to 1/3 admits threshold .4: all three fakes caught.
    assert metrics.tpr_at_fpr(Y, P, 0.34) == pytest.approx(1.0)
    assert metrics.tpr_at_fpr([0, 1], [0.9, 0.1], 0.05) == 1.0


@pytest.mark.parametrize(("rule", "expected"), [("youden", 0.3), ("accuracy", 0.3), ("fpr", 0.8)])
def test_choose_threshold_by_hand(rule, expected):
    # Candidates are midpoints .15 .3 .5 .65 .8 (and just outside the range). (TPR, FPR): .15 -> (1, 2/3),
    # .3 -> (1, 1/3), .5 -> (2/3, 1/3), .65 -> (1/3, 1/3), .8 -> (1/3, 0). Youden and accuracy (5/6) pick .3;
    # with at most 5 % false positives only .8 (TPR 1/3) and "above all" (TPR 0) remain.
    choice = metrics.choose_threshold(Y, P, rule=rule)
    assert choice.threshold == pytest.approx(expected)
    assert choice.n_val == 6 and choice.rule == rule
    assert choice.val_rates == metrics.rates_at(Y, P, choice.threshold)


def test_threshold_ties_go_to_the_candidate_nearest_the_default():
    # ai .9 .3, nature .6 .1: thresholds .2 and .75 both get 3 of 4 right; .75 is nearer 0.5.
    choice = metrics.choose_threshold([0, 1, 0, 1], [0.9, 0.6, 0.3, 0.1], rule="accuracy")
    assert choice.threshold == pytest.approx(0.75)


def test_threshold_chosen_on_validation_is_frozen_and_only_measures_test():
    choice = metrics.choose_threshold(Y, P, rule="youden")
    y_test, p_test = [0, 0, 1, 1], [0.35, 0.32, 0.31, 0.05]  # its own best threshold would be .315, not .3
    assert metrics.choose_threshold(y_test, p_test, rule="youden").threshold == pytest.approx(0.315)
    rates = choice.rates(y_test, p_test)
    assert rates.threshold == pytest.approx(0.3) and (rates.tp, rates.fp) == (2, 1)
    assert choice.predict(p_test).tolist() == [0, 0, 0, 1]
    assert choice.accuracy(y_test, p_test) == pytest.approx(3 / 4)
    assert choice.threshold == pytest.approx(0.3)  # measuring test changed nothing
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.threshold = 0.315


def test_choose_threshold_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="both classes"):
        metrics.choose_threshold([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="unknown rule"):
        metrics.choose_threshold(Y, P, rule="best-on-test")


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="3 labels but p_ai has 2"):
        metrics.accuracy([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="class indices"):
        metrics.accuracy([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.accuracy([0, 1], [0.1, 1.2])


def test_reliability_and_ece_by_hand():
    # Two bins [0, .5] and (.5, 1]. Bin 0: p .1 .3 (mean .2), one of two is ai (.5): gap .3.
    # Bin 1: p .8 .9 (mean .85), both ai (1.0): gap .15. ECE = (2 * .3 + 2 * .15) / 4 = .225.
    y, p = [1, 0, 0, 0], [0.1, 0.3, 0.8, 0.9]
    rel = metrics.reliability(y, p, n_bins=2)
    assert rel.counts.tolist() == [2, 2]
    assert rel.mean_p == pytest.approx([0.2, 0.85])
    assert rel.frac_ai == pytest.approx([0.5, 1.0])
    assert rel.ece == pytest.approx(0.225)
    assert metrics.expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.225)
    assert metrics.expected_calibration_error([0, 1], [1.0, 0.0]) == 0.0  # certain and right


def test_reliability_bins_match_scikit_learn_including_edges_and_empty_bins():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.35, 40), rng.uniform(0.7, 1, 40), [0.5, 0.1, 0.7]])  # edge values too
    y = (rng.uniform(size=p.size) >= p).astype(int)  # ai (0) with probability p: calibrated by construction
    rel = metrics.reliability(y, p, n_bins=10)
    frac, mean = calibration_curve(metrics.is_ai(y), p, n_bins=10, strategy="uniform")
    full = rel.counts > 0
    assert not full.all()  # (.35, .5) and (.5, .7) hold gaps: empty bins are NaN, not zero
    assert rel.frac_ai[full] == pytest.approx(frac) and rel.mean_p[full] == pytest.approx(mean)
    assert np.isnan(rel.mean_p[~full]).all() and rel.counts.sum() == p.size


def test_summary_row_collects_the_metrics():
    row = metrics.summary(Y, P)
    assert row["n"] == 6
    assert row["accuracy"] == pytest.approx(4 / 6) and row["auc"] == pytest.approx(7 / 9)
    assert row["ap"] == pytest.approx(29 / 36) and row["tpr@5%fpr"] == pytest.approx(1 / 3)
    assert row["ece"] == pytest.approx(metrics.expected_calibration_error(Y, P))
