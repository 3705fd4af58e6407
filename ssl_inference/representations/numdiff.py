r"""Numerical derivatives for user-defined first stages: complex step or central differences.

:class:`~ssl_inference.MEstimatorRepresentation` differentiates the user's loss,
estimating function and feature map with these; :func:`complex_step_works` decides,
on the data, whether a function is safe for the complex step.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

__all__ = ["jacobian", "complex_step_works", "COMPLEX_STEP", "CENTRAL_STEP", "NESTED_STEP"]

#: Complex-step increment: no subtraction, so any tiny value is exact to rounding.
COMPLEX_STEP = 1e-20
#: Central-difference step (relative to max(|theta_j|, 1)): eps^(1/3), optimal for O(h^2).
CENTRAL_STEP = np.finfo(float).eps ** (1 / 3)
#: Step of the outer difference when the inner derivative is itself a central difference.
NESTED_STEP = np.finfo(float).eps ** (1 / 4)


def jacobian(f: Callable, theta: np.ndarray, method: str, step: float = CENTRAL_STEP
             ) -> np.ndarray:
    r"""``d f(theta) / d theta`` for an array-valued ``f``: shape ``f.shape + (q,)``.

    ``method="complex"``: ``Im f(theta + i h e_j) / h`` (exact to rounding for analytic
    ``f``); ``"central"``: ``(f(theta + h_j e_j) - f(theta - h_j e_j)) / (2 h_j)`` with
    ``h_j = step * max(|theta_j|, 1)``.

    Examples
    --------
    >>> f = lambda t: np.array([t[0] ** 2, t[0] * t[1]])
    >>> jacobian(f, np.array([3.0, 2.0]), "complex")
    array([[6., 0.],
           [2., 3.]])
    """
    theta = np.asarray(theta, dtype=float)
    cols = []
    for j in range(theta.size):
        if method == "complex":
            t = theta.astype(complex)
            t[j] += 1j * COMPLEX_STEP
            cols.append(np.imag(f(t)) / COMPLEX_STEP)
        else:
            h = step * max(abs(theta[j]), 1.0)
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            cols.append((np.asarray(f(up)) - np.asarray(f(down))) / (up[j] - down[j]))
    return np.stack(cols, axis=-1)


def complex_step_works(f: Callable, theta: np.ndarray) -> bool:
    """Whether the complex step differentiates ``f`` correctly at ``theta``.

    ``f`` fails when it raises on complex input, drops the imaginary part (a
    ``ComplexWarning`` or a real result) or is not analytic (``abs``, ``conj``, ...):
    the directional derivative along a fixed random direction must agree with a central
    difference to 1e-6 of its size.

    Examples
    --------
    >>> complex_step_works(lambda t: t ** 3, np.array([1.0, 2.0]))
    True
    >>> complex_step_works(lambda t: np.abs(t) ** 3, np.array([1.0, 2.0]))
    False
    """
    theta = np.asarray(theta, dtype=float)
    direction = np.random.default_rng(0).normal(size=theta.size)
    direction /= np.linalg.norm(direction)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            base = np.asarray(f(theta), dtype=float)
            out = np.asarray(f(theta + 1j * COMPLEX_STEP * direction))
    except Exception:  # noqa: BLE001 - any failure on complex input means "not safe"
        return False
    if not np.iscomplexobj(out) or out.shape != base.shape:
        return False
    h = CENTRAL_STEP * max(np.abs(theta).max(initial=0.0), 1.0)
    fd = (np.asarray(f(theta + h * direction)) - np.asarray(f(theta - h * direction))) / (2 * h)
    cs = out.imag / COMPLEX_STEP
    scale = np.abs(fd).max(initial=0.0) + 1e-8 * np.abs(base).max(initial=0.0) + 1e-300
    same_value = np.allclose(out.real, base, rtol=1e-10,
                             atol=1e-12 * np.abs(base).max(initial=1.0))
    return bool(same_value and np.abs(cs - fd).max(initial=0.0) <= 1e-6 * scale)
