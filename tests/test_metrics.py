import numpy as np
import pytest

from mculora.metrics import regression_metrics


def test_regression_metrics_report_mae_and_r_on_all_and_on_nonzero_labels():
    labels = np.array([0.0, 0.0, 1.0, -2.0, 3.0])
    outputs = np.array([2.0, -1.0, 1.5, -1.0, 2.0])
    metrics = regression_metrics(labels, outputs)
    assert metrics["mae"] == pytest.approx(np.mean([2.0, 1.0, 0.5, 1.0, 1.0]))
    assert metrics["mae_nonzero"] == pytest.approx(np.mean([0.5, 1.0, 1.0]))  # the reference code's MAE
    assert metrics["corr_nonzero"] == pytest.approx(np.corrcoef(labels[2:], outputs[2:])[0, 1])
    assert metrics["corr"] == pytest.approx(np.corrcoef(labels, outputs)[0, 1])
    assert metrics["acc2"] == 1.0  # signs of the non-zero labels all right
