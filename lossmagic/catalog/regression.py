"""Regression losses, each written from its published formula."""

from __future__ import annotations

import math

import torch

from lossmagic.catalog.entry import CatalogEntry, Parameter

__all__ = ["ENTRIES"]


def mean_squared_error(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of (prediction - target)^2 (Hastie et al., ESL 2nd ed., 2.4)."""
    return ((predictions - targets) ** 2).mean()


def mean_absolute_error(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of |prediction - target| (Hastie et al., ESL 2nd ed., 10.6)."""
    return (predictions - targets).abs().mean()


def huber(predictions: torch.Tensor, targets: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss: 0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta).

    Source: Huber, "Robust Estimation of a Location Parameter", Annals of Mathematical
    Statistics 1964.
    """
    error = (predictions - targets).abs()
    quadratic = 0.5 * error**2
    linear = delta * (error - 0.5 * delta)
    return torch.where(error <= delta, quadratic, linear).mean()


def smooth_l1(predictions: torch.Tensor, targets: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Smooth L1: 0.5 e^2 / beta where |e| < beta, else |e| - 0.5 beta.

    Source: Girshick, "Fast R-CNN", ICCV 2015, equation 3 (with beta = 1).
    """
    error = (predictions - targets).abs()
    quadratic = 0.5 * error**2 / beta
    linear = error - 0.5 * beta
    return torch.where(error < beta, quadratic, linear).mean()


def log_cosh(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-cosh loss log(cosh(e)), computed as e + softplus(-2e) - log 2 to avoid overflow.

    Source: Chen et al., "Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder",
    2019, equation 4.
    """
    error = predictions - targets
    return (error + torch.nn.functional.softplus(-2.0 * error) - math.log(2.0)).mean()


def quantile(predictions: torch.Tensor, targets: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """Pinball loss max(tau e, (tau - 1) e) with e = target - prediction.

    Source: Koenker and Bassett, "Regression Quantiles", Econometrica 1978.
    """
    error = targets - predictions
    return torch.maximum(tau * error, (tau - 1.0) * error).mean()


def charbonnier(
    predictions: torch.Tensor, targets: torch.Tensor, epsilon: float = 1e-3
) -> torch.Tensor:
    """Charbonnier loss sqrt(e^2 + epsilon^2), a differentiable L1.

    Source: Charbonnier et al., "Two Deterministic Half-Quadratic Regularization
    Algorithms for Computed Imaging", ICIP 1994; used by Lai et al., LapSRN, CVPR 2017.
    """
    return torch.sqrt((predictions - targets) ** 2 + epsilon**2).mean()


def gaussian_nll(
    mean: torch.Tensor, targets: torch.Tensor, variance: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Gaussian negative log-likelihood 0.5 (log var + (y - mu)^2 / var), constant dropped.

    Source: Nix and Weigend, "Estimating the Mean and Variance of the Target Probability
    Distribution", ICNN 1994; variance clamped at eps as torch.nn.GaussianNLLLoss does.
    """
    var = variance.clamp(min=eps)
    return (0.5 * (torch.log(var) + (targets - mean) ** 2 / var)).mean()


def poisson_nll(log_rate: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Poisson negative log-likelihood exp(log_rate) - counts * log_rate, constant dropped.

    Source: McCullagh and Nelder, "Generalized Linear Models", 2nd ed., 1989, section 6.2.
    """
    return (torch.exp(log_rate) - counts * log_rate).mean()


def cosine_similarity_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity between each prediction vector and its target vector, averaged.

    Source: Salton and McGill, "Introduction to Modern Information Retrieval", 1983
    (cosine similarity); the small norm floor follows torch.nn.functional.cosine_similarity.
    """
    dot = (predictions * targets).sum(dim=-1)
    norms = predictions.norm(dim=-1).clamp(min=1e-8) * targets.norm(dim=-1).clamp(min=1e-8)
    cosine: torch.Tensor = dot / norms
    return (1.0 - cosine).mean()


_PAIR = "predictions:float[N,D] targets:float[N,D]"

ENTRIES = (
    CatalogEntry(
        key="mse",
        elementwise=True,
        names=("mean squared error", "MSE", "L2 loss", "squared error", "quadratic loss"),
        family="regression",
        description=(
            "the mean over all elements of the squared difference between prediction and target"
        ),
        spec=_PAIR,
        reference=mean_squared_error,
        keywords=("squared", "square", "difference", "regression", "l2", "least squares"),
    ),
    CatalogEntry(
        key="mae",
        elementwise=True,
        names=("mean absolute error", "MAE", "L1 loss", "absolute error"),
        family="regression",
        description=(
            "the mean over all elements of the absolute difference between prediction and target"
        ),
        spec=_PAIR,
        reference=mean_absolute_error,
        keywords=("absolute", "difference", "regression", "l1", "median", "robust"),
    ),
    CatalogEntry(
        key="huber",
        elementwise=True,
        names=("Huber loss", "huber"),
        family="regression",
        description=(
            "quadratic 0.5 e^2 for residuals up to delta and linear delta (|e| - delta / 2) "
            "beyond it, robust to outliers"
        ),
        spec=_PAIR,
        reference=huber,
        parameters=(
            Parameter(
                "delta", 1.0, ("threshold", "\N{GREEK SMALL LETTER DELTA}", "transition point")
            ),
        ),
        keywords=(
            "outliers",
            "quadratic",
            "linear",
            "robust",
            "threshold",
            "small errors",
            "large errors",
            "switches",
            "half the squared error",
            "absolute error",
            "beyond",
            "piecewise",
            "linearly",
            "squared near zero",
            "grows",
        ),
    ),
    CatalogEntry(
        key="smooth_l1",
        elementwise=True,
        names=("smooth L1 loss", "smooth-L1", "SmoothL1"),
        family="regression",
        description=(
            "0.5 e^2 / beta for residuals below beta and |e| - beta / 2 above, as in box "
            "regression for object detection"
        ),
        spec=_PAIR,
        reference=smooth_l1,
        parameters=(Parameter("beta", 1.0, ("threshold", "\N{GREEK SMALL LETTER BETA}")),),
        keywords=(
            "bounding box",
            "box regression",
            "detection",
            "fast r-cnn",
            "outliers",
            "quadratic",
            "linear",
        ),
    ),
    CatalogEntry(
        key="log_cosh",
        elementwise=True,
        names=("log-cosh loss", "log cosh", "logcosh"),
        family="regression",
        description=(
            "the logarithm of the hyperbolic cosine of the prediction error, quadratic near "
            "zero and linear for large errors"
        ),
        spec=_PAIR,
        reference=log_cosh,
        keywords=("hyperbolic cosine", "cosh", "logarithm", "smooth", "outliers"),
    ),
    CatalogEntry(
        key="quantile",
        elementwise=True,
        names=("quantile loss", "pinball loss", "check loss"),
        family="regression",
        description=(
            "tau times the error when the target is above the prediction and (1 - tau) times "
            "it when below, to regress a chosen quantile"
        ),
        spec=_PAIR,
        reference=quantile,
        parameters=(
            Parameter(
                "tau", 0.5, ("quantile", "\N{GREEK SMALL LETTER TAU}", "percentile level", "q")
            ),
        ),
        keywords=(
            "quantile",
            "percentile",
            "median",
            "asymmetric",
            "under-prediction",
            "over-prediction",
            "forecast",
            "interval",
        ),
    ),
    CatalogEntry(
        key="charbonnier",
        elementwise=True,
        names=("Charbonnier loss", "pseudo-Huber L1", "differentiable L1"),
        family="regression",
        description="sqrt(e^2 + epsilon^2), a smooth approximation of the absolute error",
        spec=_PAIR,
        reference=charbonnier,
        parameters=(Parameter("epsilon", 1e-3, ("eps", "\N{GREEK SMALL LETTER EPSILON}")),),
        keywords=(
            "square root",
            "sqrt",
            "smooth",
            "super-resolution",
            "image restoration",
            "absolute",
        ),
    ),
    CatalogEntry(
        key="gaussian_nll",
        elementwise=True,
        names=(
            "Gaussian negative log-likelihood",
            "heteroscedastic regression loss",
            "Gaussian NLL",
        ),
        family="regression",
        description=(
            "0.5 (log variance + squared error / variance) where the model predicts a mean "
            "and a variance for each target"
        ),
        spec="mean:float[N,D] targets:float[N,D] variance:float[N,D]~positive",
        reference=gaussian_nll,
        parameters=(Parameter("eps", 1e-6, ("epsilon", "minimum variance")),),
        keywords=(
            "variance",
            "uncertainty",
            "aleatoric",
            "normal distribution",
            "likelihood",
            "predicted variance",
            "heteroscedastic",
        ),
    ),
    CatalogEntry(
        key="poisson_nll",
        elementwise=True,
        names=("Poisson negative log-likelihood", "Poisson loss", "Poisson NLL"),
        family="regression",
        description=(
            "exp(log rate) - count * log rate, the negative log-likelihood of counts under a "
            "Poisson distribution whose log rate the model predicts"
        ),
        spec="log_rate:float[N] counts:float[N]~positive",
        reference=poisson_nll,
        keywords=("counts", "count data", "rate", "events", "log rate", "poisson"),
    ),
    CatalogEntry(
        key="cosine_similarity",
        names=("cosine similarity loss", "cosine distance loss", "1 - cosine similarity"),
        family="regression",
        description=(
            "one minus the cosine similarity between each predicted vector and its target "
            "vector, averaged over the batch"
        ),
        spec=_PAIR,
        reference=cosine_similarity_loss,
        keywords=("cosine", "angle", "direction", "normalized", "orientation", "vectors"),
    ),
)
