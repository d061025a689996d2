import numpy as np
import pytest

from mculora.training.metrics import regression_metrics


def test_regression_metrics_report_mae_and_r_on_all_and_on_nonzero_labels():
    labels = np.array([0.0, 0.0, 1.0, -2.0, 3.0])
    outputs = np.array([2.0, -1.0, 1.5, -1.0, 2.0])
    metrics = regression_metrics(labels, outputs)
    assert metrics["mae"] == pytest.approx(np.mean([2.0, 1.0, 0.5, 1.0, 1.0]))
    assert metrics["mae_nonzero"] == pytest.approx(np.mean([0.5, 1.0, 1.0]))  # the reference code's MAE
    assert metrics["corr_nonzero"] == pytest.approx(np.corrcoef(labels[2:], outputs[2:])[0, 1])
    assert metrics["corr"] == pytest.approx(np.corrcoef(labels, outputs)[0, 1])
    assert metrics["acc2"] == 1.0  # signs of the non-zero labels all right


def test_disagreement_counts_which_member_a_pair_follows():
    from mculora.training.evaluate import disagreement_report

    labels = np.array([0, 0, 0, 1, 1])
    one_hot = np.eye(3)
    a = one_hot[[0, 1, 0, 1, 2]]  # right, wrong, right, right, wrong
    v = one_hot[[1, 0, 0, 2, 1]]  # wrong, right, right, wrong, right
    av = one_hot[[1, 0, 0, 2, 2]]  # follows v, v, (both right: not counted), v, a
    report = disagreement_report({"a": (labels, a), "v": (labels, v), "av": (labels, av)})
    # Samples 0, 1, 3 and 4 have one right member: the pair takes the right one's label in 1 (sample 1), the wrong
    # one's in 3.
    assert report == {"av": {"samples": 4, "follows_right": 0.25, "follows_wrong": 0.75}}
