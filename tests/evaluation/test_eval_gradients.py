"""The white-box attacks' gradients come from finite differences of the ONNX model's answers:
checked against the analytic cross-entropy gradient of a logistic regression exported to ONNX
(the small step closely, the 1 px quantum step coarsely, the mix ``GradientClassifier`` uses by
direction), and FGSM through ART on them against FGSM computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from eval_support import digits_pick

from console.evaluation.art_classifier import FD_STEPS, QUANTUM, robust_gradient
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


def analytic_gradient(fitted: object, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = fitted.predict_proba(x)  # type: ignore[attr-defined]
    return np.asarray((p - np.eye(10)[y]) @ fitted.coef_)  # type: ignore[attr-defined]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def test_the_quantum_step_matches_the_analytic_gradient_coarsely(
    logreg: tuple[object, CountingModel],
) -> None:
    """A central difference of step h errs by ~h**2/6 times the loss's third derivative: at
    h = 1 px that is a few per cent of the largest component (measured 3.5 %), not of each
    small one, so the bound is absolute (10 % of the largest) plus direction and sign."""
    fitted, model = logreg
    x, y = digits_pick(16)
    analytic = analytic_gradient(fitted, x, y)
    estimated = loss_gradient(model, x, y.astype(np.int64), step=QUANTUM)
    scale = np.abs(analytic).max()
    np.testing.assert_allclose(estimated, analytic, rtol=0, atol=0.1 * scale)
    assert cosines(estimated, analytic).min() > 0.99
    big = np.abs(analytic) > 0.1 * scale
    assert (np.sign(estimated[big]) == np.sign(analytic[big])).all()


def test_the_mixed_gradient_points_along_the_analytic_one(
    logreg: tuple[object, CountingModel],
) -> None:
    """What the attacks use: the mean of the unit-L1 gradients of each step (2 x 128 rows per
    input). On a smooth model it is the analytic gradient's direction."""
    fitted, model = logreg
    x, y = digits_pick(16)
    analytic = analytic_gradient(fitted, x, y)
    before = model.log.rows
    mixed = robust_gradient(model, x, y.astype(np.int64), FD_STEPS)
    assert model.log.rows - before == len(x) * 128 * len(FD_STEPS)
    assert cosines(mixed, analytic).min() > 0.999
    np.testing.assert_allclose(np.abs(mixed).sum(axis=1), 1.0, rtol=1e-4)
    big = np.abs(analytic) > 1e-3 * np.abs(analytic).max()
    assert (np.sign(mixed[big]) == np.sign(analytic[big])).mean() > 0.99


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
