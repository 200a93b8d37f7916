"""Known-answer and property tests for mtl_cli.metrics (hand-computed values and formulas)."""

import math

import numpy as np
import pytest

from mtl_cli.metrics import (
    accuracy,
    average_precision,
    delta_m,
    f1_score,
    higher_is_better,
    mean_ci,
    mse,
    multilabel_metrics,
    precision,
    recall,
    t_critical,
    tune_thresholds,
)

# 4 samples x 3 labels; label 2 has no positive. Predictions at 0.5:
#   label0 pred [1,1,0,1] vs [1,0,1,1]: tp 2 fp 1 fn 1 tn 0
#   label1 pred [0,1,0,0] vs [0,1,0,0]: tp 1 fp 0 fn 0 tn 3
#   label2 pred [1,0,0,0] vs [0,0,0,0]: tp 0 fp 1 fn 0 tn 3
SCORES = np.array(
    [
        [0.9, 0.2, 0.7],
        [0.6, 0.7, 0.1],
        [0.3, 0.4, 0.2],
        [0.8, 0.1, 0.4],
    ]
)
TARGETS = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)


def test_accuracy_from_logits_and_from_predictions():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.1, 0.2, 0.3], [5.0, 0.0, 0.0]])
    target = np.array([0, 1, 0, 2])
    assert accuracy(logits, target) == 0.5
    assert accuracy(np.array([0, 1, 2, 0]), target) == 0.5
    with pytest.raises(ValueError, match="logits_or_pred"):
        accuracy(np.zeros((4, 2, 2)), target)


def test_accuracy_and_mse_accept_torch_tensors():
    import torch

    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], requires_grad=True)
    assert accuracy(logits, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)
    assert mse(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0])) == pytest.approx(
        13 / 3
    )


def test_mse_known_answer_and_shape_check():
    assert mse([1.0, 2.0, 4.0], [1.0, 0.0, 1.0]) == pytest.approx((0 + 4 + 9) / 3)
    with pytest.raises(ValueError, match="pred: shape"):
        mse(np.zeros(3), np.zeros((3, 1)))


def test_multilabel_metrics_hand_computed():
    m = multilabel_metrics(SCORES, TARGETS, label_names=["a", "b", "c"])
    assert m["a/accuracy"] == pytest.approx(0.5)
    assert m["a/precision"] == pytest.approx(2 / 3)
    assert m["a/recall"] == pytest.approx(2 / 3)
    assert m["a/f1"] == pytest.approx(2 / 3)
    assert (m["b/accuracy"], m["b/precision"], m["b/recall"], m["b/f1"]) == (1.0, 1.0, 1.0, 1.0)
    # label c: one false positive, nothing present -> precision, recall, F1 all 0
    assert (m["c/accuracy"], m["c/precision"], m["c/recall"], m["c/f1"]) == (0.75, 0.0, 0.0, 0.0)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    assert m["subset_accuracy"] == pytest.approx(1 / 4)
    # AP: label a ranks + + - + -> (1 + 1 + 3/4) / 3; label b's positive is ranked first
    assert m["a/ap"] == pytest.approx(11 / 12)
    assert m["b/ap"] == pytest.approx(1.0)
    assert m["c/ap"] is None
    assert m["map"] == pytest.approx((11 / 12 + 1) / 2)


def test_label_without_positives_never_gives_nan():
    # Nothing predicted and nothing present on label c: precision = recall = F1 = 1.
    m = multilabel_metrics(SCORES, TARGETS, thresholds=[0.5, 0.5, 0.9])
    assert (m["label2/precision"], m["label2/recall"], m["label2/f1"]) == (1.0, 1.0, 1.0)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    for value in m.values():
        assert value is None or math.isfinite(value)
    all_negative = multilabel_metrics(SCORES, np.zeros_like(TARGETS), per_label=False)
    assert all_negative["map"] is None
    assert all(v is None or math.isfinite(v) for v in all_negative.values())


def test_empty_ratio_conventions():
    # tp, fp, fn for: nothing at all / predicted but absent / present but missed
    tp, fp, fn = np.array([0, 0, 0]), np.array([0, 2, 0]), np.array([0, 0, 3])
    np.testing.assert_array_equal(precision(tp, fp, fn), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(recall(tp, fp, fn), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(f1_score(tp, fp, fn), [1.0, 0.0, 0.0])


def test_average_precision_with_ties_matches_hand_ranking():
    # scores 0.9(+) 0.8(-) 0.8(+) 0.1(+): the tie shares the precision at its end (2/3)
    scores = np.array([[0.9], [0.8], [0.8], [0.1]])
    targets = np.array([[1], [0], [1], [1]], dtype=bool)
    assert average_precision(scores, targets)[0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def _reference_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """sklearn's formula written out: sum over distinct thresholds of (R_n - R_{n-1}) P_n."""
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        selected = scores >= t
        tp = np.sum(targets & selected)
        rec = tp / targets.sum()
        total += (rec - prev_recall) * tp / selected.sum()
        prev_recall = rec
    return total


def test_average_precision_matches_reference_formula_on_random_data():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(40, 7)) / 5  # many ties
    targets = rng.random((40, 7)) < 0.3
    targets[0, :] = True  # every label has a positive
    ap = average_precision(scores, targets)
    expected = [_reference_ap(scores[:, j], targets[:, j]) for j in range(7)]
    np.testing.assert_allclose(ap, expected, rtol=1e-12)


def test_average_precision_is_invariant_to_monotone_score_transforms():
    rng = np.random.default_rng(1)
    scores = rng.random((30, 4))
    targets = rng.random((30, 4)) < 0.5
    targets[0] = True
    np.testing.assert_allclose(
        average_precision(scores, targets), average_precision(scores**3, targets)
    )


def test_multilabel_input_errors():
    with pytest.raises(ValueError, match=r"scores: values in .*sigmoid"):
        multilabel_metrics(SCORES * 4 - 2, TARGETS)
    with pytest.raises(ValueError, match="targets: shape"):
        multilabel_metrics(SCORES, TARGETS[:, :2])
    with pytest.raises(ValueError, match="thresholds: shape"):
        multilabel_metrics(SCORES, TARGETS, thresholds=[0.5, 0.5])
    with pytest.raises(ValueError, match="label_names"):
        multilabel_metrics(SCORES, TARGETS, label_names=["a"])


def test_tune_thresholds_maximises_f1_with_ties_closest_to_half():
    grid = [0.1, 0.25, 0.5, 0.65, 0.85, 0.95]
    # label a: positives at 0.9, 0.8, 0.3; negative 0.6. F1 by threshold:
    #   0.1, 0.25 -> all predicted: 6/7; 0.5 -> 2/3; 0.65, 0.85 -> lower. Best 6/7, closest: 0.25
    # label b: positive at 0.7 only; F1 = 1 at 0.5 and 0.65 (tie) -> 0.5, the closer one
    # label c: no positive; F1 = 1 when nothing is predicted: 0.85, 0.95 -> closest 0.85
    np.testing.assert_allclose(tune_thresholds(SCORES, TARGETS, grid), [0.25, 0.5, 0.85])


def test_tune_thresholds_equidistant_tie_takes_lower_and_improves_f1():
    scores = np.array([[0.45], [0.55], [0.2]])
    targets = np.array([[1], [1], [0]], dtype=bool)
    # 0.4 and 0.6 are equally close to 0.5, but only 0.4 gives F1 = 1 (0.6 predicts nothing)
    assert tune_thresholds(scores, targets, [0.4, 0.6])[0] == 0.4
    scores = np.array([[0.7], [0.2]])
    targets = np.array([[1], [0]], dtype=bool)
    assert tune_thresholds(scores, targets, [0.6, 0.4])[0] == 0.4  # both F1 = 1, 0.1 away
    rng = np.random.default_rng(2)
    scores, targets = rng.random((50, 5)), rng.random((50, 5)) < 0.4
    tuned = tune_thresholds(scores, targets)
    f1_tuned = multilabel_metrics(scores, targets, tuned)["macro_f1"]
    assert f1_tuned >= multilabel_metrics(scores, targets, 0.5)["macro_f1"]


def _t_cdf(t: float, df: int) -> float:
    """Student-t CDF by Simpson integration of the density (independent of the table)."""
    x = np.linspace(0.0, t, 200_001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c) * (1 + x**2 / df) ** (-(df + 1) / 2)
    h = x[1] - x[0]
    simpson = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return 0.5 + simpson


def test_t_table_values_are_the_975_quantiles():
    known = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045, 40: 2.021, 60: 2.000, 120: 1.980}
    for df, value in known.items():
        assert t_critical(df) == pytest.approx(value, abs=6e-4)
    for df in [*range(1, 31), 31, 45, 100]:
        assert _t_cdf(t_critical(df), df) == pytest.approx(0.975, abs=2e-6), df
    assert t_critical(10**6) == pytest.approx(1.959964, abs=1e-5)
    with pytest.raises(ValueError, match="df"):
        t_critical(0)


def test_mean_ci_known_answers():
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302653 * 1.0 / math.sqrt(3))
    mean, half, n = mean_ci([1.0, 2.0, 3.0], method="normal")
    assert half == pytest.approx(1.959964 * 1.0 / math.sqrt(3), rel=1e-6)
    mean, half, n = mean_ci([0.5])
    assert (mean, n) == (0.5, 1) and math.isnan(half)
    assert mean_ci([2.0, 2.0])[1] == 0.0


def test_mean_ci_errors():
    with pytest.raises(ValueError, match="values: empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="method"):
        mean_ci([1.0, 2.0], method="bootstrap")
    with pytest.raises(ValueError, match="confidence: 0.9 with method='t'"):
        mean_ci([1.0, 2.0], confidence=0.9)


def test_higher_is_better_uses_last_component():
    assert higher_is_better("digits/accuracy")
    assert higher_is_better("test/greek/f1") and higher_is_better("map")
    assert higher_is_better("subset_accuracy") and higher_is_better("r2")
    assert not higher_is_better("test/greek/loss")
    assert not higher_is_better("mse") and not higher_is_better("hamming_loss")
    with pytest.raises(ValueError, match="'foo/weirdness': unknown direction"):
        higher_is_better("foo/weirdness")


def test_delta_m_hand_computed():
    metrics = {"a/accuracy": 0.9, "b/mse": 0.8, "only_here/accuracy": 0.1}
    baseline = {"a/accuracy": 0.8, "b/mse": 1.0, "only_there/mse": 3.0}
    # (100/2) * [ (0.9-0.8)/0.8 - (0.8-1.0)/1.0 ] = 50 * (0.125 + 0.2)
    assert delta_m(metrics, baseline) == pytest.approx(16.25)
    assert delta_m(baseline, baseline) == 0.0
    # a custom direction function flips the sign of the mse term
    assert delta_m(metrics, baseline, lambda name: True) == pytest.approx(50 * (0.125 - 0.2))
    # None (undefined, e.g. AP without positives) is skipped
    assert delta_m({**metrics, "c/ap": None}, {**baseline, "c/ap": 0.5}) == pytest.approx(16.25)


def test_delta_m_errors():
    with pytest.raises(ValueError, match="no metric in common"):
        delta_m({"a/accuracy": 1.0}, {"b/accuracy": 1.0})
    with pytest.raises(ValueError, match="'a/accuracy' is 0"):
        delta_m({"a/accuracy": 1.0}, {"a/accuracy": 0.0})
    with pytest.raises(ValueError, match=r"over: 'task'; allowed: 'metrics', 'tasks'"):
        delta_m({"a/accuracy": 1.0}, {"a/accuracy": 1.0}, over="task")


# An NYUv2-like table: 3 tasks with a 2/2/5 metric split, mixed directions.
NYU_BASELINE = {
    "seg/miou": 0.40,
    "seg/acc": 0.80,
    "depth/abs_error": 0.50,
    "depth/rel_error": 0.20,
    "normal/mean_error": 20.0,
    "normal/median_error": 16.0,
    "normal/within_11_acc": 0.25,
    "normal/within_22_acc": 0.50,
    "normal/within_30_acc": 0.625,
}
NYU_MODEL = {
    "seg/miou": 0.42,  # higher better: +0.02 / 0.40 = +5 %
    "seg/acc": 0.82,  # higher better: +0.02 / 0.80 = +2.5 %
    "depth/abs_error": 0.45,  # lower better: -(-0.05 / 0.50) = +10 %
    "depth/rel_error": 0.22,  # lower better: -(+0.02 / 0.20) = -10 %
    "normal/mean_error": 21.0,  # lower better: -(1 / 20) = -5 %
    "normal/median_error": 17.0,  # lower better: -(1 / 16) = -6.25 %
    "normal/within_11_acc": 0.24,  # higher better: -0.01 / 0.25 = -4 %
    "normal/within_22_acc": 0.49,  # higher better: -0.01 / 0.50 = -2 %
    "normal/within_30_acc": 0.60,  # higher better: -0.025 / 0.625 = -4 %
}
# Task sums: seg 5 + 2.5 = 7.5; depth 10 - 10 = 0; normal -5 - 6.25 - 4 - 2 - 4 = -21.25.
# metrics (flat, Navon et al. 2022): (7.5 + 0 - 21.25) / 9 = -13.75 / 9 = -1.52777... %
# tasks (LibMTL): (7.5 / 2 + 0 / 2 - 21.25 / 5) / 3 = (3.75 + 0 - 4.25) / 3 = -0.16666... %
NYU_DELTA_M_METRICS = -13.75 / 9
NYU_DELTA_M_TASKS = -0.5 / 3


def test_delta_m_two_conventions_on_a_2_2_5_metric_split():
    assert [higher_is_better(k) for k in NYU_MODEL] == [True, True] + [False] * 4 + [True] * 3
    assert delta_m(NYU_MODEL, NYU_BASELINE) == pytest.approx(NYU_DELTA_M_METRICS)
    assert delta_m(NYU_MODEL, NYU_BASELINE, over="metrics") == pytest.approx(-1.527777777)
    assert delta_m(NYU_MODEL, NYU_BASELINE, over="tasks") == pytest.approx(NYU_DELTA_M_TASKS)
    assert delta_m(NYU_MODEL, NYU_BASELINE, higher_is_better, "tasks") == pytest.approx(
        -0.166666667
    )
    # a split prefix ("test/") is part of every task name and changes nothing
    test_model = {f"test/{k}": v for k, v in NYU_MODEL.items()}
    test_base = {f"test/{k}": v for k, v in NYU_BASELINE.items()}
    assert delta_m(test_model, test_base, over="tasks") == pytest.approx(NYU_DELTA_M_TASKS)
    # equal metric counts per task: both conventions agree (seg and depth only, 2 + 2)
    two = [k for k in NYU_MODEL if not k.startswith("normal/")]
    sub_model, sub_base = {k: NYU_MODEL[k] for k in two}, {k: NYU_BASELINE[k] for k in two}
    assert delta_m(sub_model, sub_base, over="tasks") == pytest.approx(7.5 / 4)
    assert delta_m(sub_model, sub_base) == pytest.approx(7.5 / 4)
    # keys without "/" are tasks of their own: a flat mean again
    assert delta_m({"a": 2.0, "b": 1.0}, {"a": 1.0, "b": 2.0}, lambda k: True, "tasks") == (
        pytest.approx(100 * (1.0 - 0.5) / 2)
    )
