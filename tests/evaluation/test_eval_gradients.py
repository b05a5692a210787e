"""The white-box attacks' gradients come from finite differences of the ONNX model's answers:
checked against the analytic cross-entropy gradient of a logistic regression exported to ONNX,
and FGSM through ART on them against FGSM computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from eval_support import digits_pick

from console.evaluation.onnx_model import CountingModel, cross_entropy, loss_gradient
from console.lab.seed_train import export_onnx
from console.model_artifacts import make_plain_session

pytestmark = pytest.mark.filterwarnings("ignore:PyTorch not found")


@pytest.fixture(scope="module")
def logreg() -> tuple[object, CountingModel]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    with threadpool_limits(1):  # OpenBLAS' pool on busy cores: many times slower
        fitted = LogisticRegression(max_iter=3000, C=0.05).fit(x.astype(np.float32), y)
    return fitted, CountingModel(make_plain_session(export_onnx(fitted)))


def test_finite_differences_match_the_analytic_gradient(
    logreg: tuple[object, CountingModel],
) -> None:
    fitted, model = logreg
    x, y = digits_pick(16)
    p = fitted.predict_proba(x)  # type: ignore[attr-defined]
    analytic = (p - np.eye(10)[y]) @ fitted.coef_  # type: ignore[attr-defined]
    before = model.log.rows
    estimated = loss_gradient(model, x, y.astype(np.int64), step=0.05)
    assert model.log.rows - before == len(x) * 128  # 2 rows per pixel per input
    big = np.abs(analytic) > 1e-3 * np.abs(analytic).max()
    np.testing.assert_allclose(estimated[big], analytic[big], rtol=0.05, atol=1e-4)
    assert (np.sign(estimated[big]) == np.sign(analytic[big])).mean() > 0.99


def test_cross_entropy_keeps_precision_where_p_rounds_to_one() -> None:
    p = np.array([[1.0, 1e-9, 2e-9] + [0.0] * 7], dtype=np.float32)
    assert cross_entropy(p, np.array([0]))[0] == pytest.approx(3e-9, rel=1e-3)
    assert cross_entropy(p, np.array([1]))[0] == pytest.approx(-np.log(1e-9), rel=1e-3)


def test_art_fgsm_on_the_estimated_gradient_is_fgsm(logreg: tuple[object, CountingModel]) -> None:
    from art.attacks.evasion import FastGradientMethod

    from console.evaluation.art_classifier import GradientClassifier

    fitted, model = logreg
    x, y = digits_pick(16)
    adversarial = FastGradientMethod(GradientClassifier(model), eps=1.0).generate(
        x, y=np.eye(10, dtype=np.float32)[y]
    )
    p = fitted.predict_proba(x)  # type: ignore[attr-defined]
    by_hand = np.clip(x + np.sign((p - np.eye(10)[y]) @ fitted.coef_), 0, 16)  # type: ignore[attr-defined]
    agree = np.isclose(np.clip(adversarial, 0, 16), by_hand, atol=1e-4).mean()
    assert agree > 0.99
