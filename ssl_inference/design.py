r"""The second-stage design as a function of the learned features.

A two-stage model's design row is ``w_j = w(z_j, phi_j)``, ``phi_j = phi(x_j; theta)``:
the learned features enter as plain columns (``y ~ z`` with the features appended) or
through formula terms (``z * pc0``, ``I(pc0**2)``, ``np.exp(pc1)``). Everything
first-stage-aware needs the chain rule through ``w``:

.. math:: \frac{d w_j}{d\theta} = D_j \frac{d\phi_j}{d\theta}, \qquad
          D_j = \frac{\partial w_j}{\partial \phi_j} \quad (d \times k),

and the group action moves the design (``phi -> rho(g) phi`` gives ``W -> W T_g``).

* :class:`AppendedFeatures`: features appended as the last columns (array models);
  ``D_j`` selects columns, ``T_g = blockdiag(I, rho(g)')``.
* :class:`FormulaFeatures`: features inside a fitted formula. ``D_j`` by differencing
  the formula: columns linear in a feature (interactions) exactly, by a secant;
  smooth transforms by Richardson-extrapolated central differences. Categorical and
  stateful uses of a feature, and step functions, are refused
  (:class:`~ssl_inference.exceptions.NonDifferentiableDesignError`). ``T_g`` by
  regressing the moved design on the design; when the group does not map the
  design's column span onto itself the fitted values depend on the gauge
  (:class:`~ssl_inference.exceptions.GaugeDependentDesignError`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
import patsy

from ._formula import design_for, formula_factors, names_in
from .exceptions import GaugeDependentDesignError, NonDifferentiableDesignError
from .symmetry import CoefficientAction, Group

__all__ = ["DesignJacobian", "FeatureDesign", "AppendedFeatures", "FormulaFeatures"]

_EPS = np.finfo(float).eps
#: relative residual above which a moved design is not in the design's column span
_SPAN_RTOL = 1e-7


class DesignJacobian:
    r"""``D_j = d w_j / d phi_j`` of ``n`` design rows, stored by feature.

    For feature ``f``, ``cols[f]`` are the design columns it moves and ``vals[f]``
    (n, len(cols[f])) their derivatives: ``D_j[cols[f][i], f] = vals[f][j, i]``.

    Examples
    --------
    >>> jac = DesignJacobian(3, [np.array([1, 2])], [np.array([[1.0, 2.0], [1.0, -1.0]])])
    >>> jac.pull(np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]))      # D_j' c_j
    array([[3.],
           [0.]])
    >>> jac.push(np.array([[1.0], [2.0]]))                           # D_j dphi_j
    array([[ 0.,  1.,  2.],
           [ 0.,  2., -2.]])
    """

    def __init__(self, n_params: int, cols, vals):
        self.n_params = int(n_params)
        self.cols = [np.asarray(c, dtype=int) for c in cols]
        self.vals = [np.asarray(v, dtype=float) for v in vals]

    @property
    def n_features(self) -> int:
        return len(self.cols)

    def rows(self, index) -> "DesignJacobian":
        """The Jacobian of a subset of rows (a slice or an index array)."""
        return DesignJacobian(self.n_params, self.cols, [v[index] for v in self.vals])

    def push(self, dphi: np.ndarray) -> np.ndarray:
        """``D_j dphi_j`` for each row: (n, k) feature changes -> (n, d) design changes."""
        dphi = np.asarray(dphi, dtype=float)
        out = np.zeros((dphi.shape[0], self.n_params))
        for f, (cols, vals) in enumerate(zip(self.cols, self.vals)):
            out[:, cols] += vals * dphi[:, [f]]
        return out

    def pull(self, C: np.ndarray) -> np.ndarray:
        """``D_j' C_j`` for each row: (n, d) -> (n, k), or (n, d, r) -> (n, k, r)."""
        C = np.asarray(C, dtype=float)
        out = np.empty((C.shape[0], self.n_features) + C.shape[2:])
        for f, (cols, vals) in enumerate(zip(self.cols, self.vals)):
            out[:, f] = np.einsum("jc,jc...->j...", vals, C[:, cols])
        return out

    def project(self, M: np.ndarray) -> np.ndarray:
        """``M D_j`` for every row, transposed: (r, d) -> (n, k, r)."""
        M = np.asarray(M, dtype=float)
        n = self.vals[0].shape[0] if self.vals else 0
        out = np.empty((n, self.n_features, M.shape[0]))
        for f, (cols, vals) in enumerate(zip(self.cols, self.vals)):
            out[:, f] = vals @ M[:, cols].T
        return out


class FeatureDesign(ABC):
    """The map ``(rows, phi) -> W`` from covariates and learned features to the design.

    ``rows`` is what the design needs besides the features: the covariate block of an
    array model, the data frame of a formula model.

    Attributes
    ----------
    n_params : int
        Design columns ``d``.
    feature_cols : ndarray of int
        Columns that depend on the learned features.
    plain_cols : ndarray of int (k,)
        For each feature the column that is the feature itself, or -1.
    """

    n_params: int
    feature_cols: np.ndarray
    plain_cols: np.ndarray

    @property
    def is_selector(self) -> bool:
        """Whether the features are plain columns and nothing else depends on them."""
        return bool((self.plain_cols >= 0).all()
                    and np.array_equal(np.sort(self.plain_cols), self.feature_cols))

    @abstractmethod
    def build(self, rows, phi: np.ndarray) -> np.ndarray:
        """The design (n, d) of ``rows`` with learned features ``phi`` (n, k)."""

    @abstractmethod
    def jacobian(self, rows, phi: np.ndarray) -> DesignJacobian:
        """``D_j = d w_j / d phi_j`` at ``phi``."""

    def coefficient_action(self, group: Group, rows, phi: np.ndarray, design: np.ndarray,
                           jacobian: DesignJacobian | None = None) -> CoefficientAction:
        r"""How ``group`` moves the coefficients: ``M_g = T_g^{-1}`` with ``W_g = W T_g``.

        With the features as plain columns this is the group's own
        ``blockdiag(I, rho(g))``. Otherwise ``T_g`` solves ``W T = W(rows, phi rho(g)')``
        on the sample, and for a Lie-algebra direction ``A`` ``T_A`` solves
        ``W T = [D_j A phi_j]_j``; ``N_A = -T_A``.

        Raises
        ------
        GaugeDependentDesignError
            When a moved design is not in the column span of the design: the fitted
            values themselves then depend on the gauge.
        """
        if self.is_selector:
            return group.coefficient_action(self.n_params, self.plain_cols)
        W = np.asarray(design, dtype=float)
        pinv = np.linalg.pinv(W)
        finite = []
        for g in group.generators():
            moved = self.build(rows, phi @ group.rho(g).T)
            T = self._in_span(W, pinv, moved, group)
            finite.append(np.linalg.inv(T))
        infinitesimal = []
        algebra = group.lie_algebra()
        if algebra:
            jac = self.jacobian(rows, phi) if jacobian is None else jacobian
            for A in algebra:
                infinitesimal.append(-self._in_span(W, pinv, jac.push(phi @ A.T), group))
        return CoefficientAction(tuple(finite), tuple(infinitesimal))

    def _in_span(self, W, pinv, moved, group) -> np.ndarray:
        T = pinv @ moved
        scale = np.linalg.norm(moved) + _EPS * np.linalg.norm(W)
        if np.linalg.norm(W @ T - moved) > _SPAN_RTOL * max(scale, 1.0):
            raise GaugeDependentDesignError(
                f"The formula's terms in the learned features are not mapped onto "
                f"themselves by the representation's symmetry group, {group.name}: moving "
                "the features within the group (an equally good first-stage fit) changes "
                "the span of the design, so the fitted values, predictions and every "
                "coefficient depend on the arbitrary gauge of the first stage. Use terms "
                "the group maps onto each other (e.g. all products of the features of a "
                "given degree, or functions of the whole feature vector such as "
                "I(pc0**2 + pc1**2) under rotations), a first stage with a smaller group "
                "(e.g. PCA(symmetry='sign')), or pass allow_gauge=True to fit in the "
                "reported gauge (the summary then says that every number is "
                "gauge-dependent).")
        return T


class AppendedFeatures(FeatureDesign):
    """Learned features appended as the last ``k`` columns of a covariate block.

    Examples
    --------
    >>> des = AppendedFeatures(n_base=1, n_features=2)
    >>> des.build(np.ones((2, 1)), np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[1., 1., 2.],
           [1., 3., 4.]])
    >>> des.is_selector
    True
    """

    def __init__(self, n_base: int, n_features: int):
        self.n_params = n_base + n_features
        self.feature_cols = np.arange(n_base, n_base + n_features)
        self.plain_cols = self.feature_cols.copy()

    def build(self, rows, phi):
        base = np.asarray(rows, dtype=float).reshape(len(phi), -1)
        return np.column_stack([base, phi])

    def jacobian(self, rows, phi):
        n = len(phi)
        return DesignJacobian(self.n_params, [[c] for c in self.plain_cols],
                              [np.ones((n, 1))] * len(self.plain_cols))


class FormulaFeatures(FeatureDesign):
    r"""Learned features inside a fitted formula (patsy or formulaic).

    ``D_j`` column by column, for each feature ``f`` the formula uses beyond a plain
    term, from the design at ``phi +- s e_f`` (``s`` the feature's sample standard
    deviation) and ``phi +- h e_f``, ``phi +- h/2 e_f`` (``h = 10^-4 s``):

    * columns with a zero second difference at step ``s`` whose secant agrees with the
      local derivative are linear in ``phi_f`` (interactions, ``I(3 * pc0)``): ``D``
      is the secant ``(w(+s) - w(-s)) / 2s``, exact up to rounding;
    * other columns: ``D = (4 d_{h/2} - d_h) / 3`` (Richardson extrapolation of the
      central differences ``d``; error ``O(h^4)``).

    Refused (:class:`~ssl_inference.exceptions.NonDifferentiableDesignError`):
    categorical codings of a feature (``C(pc0 > 0)``, booleans), stateful transforms
    (``center``, ``standardize``, ``bs``: their state is learned from the features
    and would move with ``theta``), step functions (columns that change with the
    feature but whose derivative vanishes at most rows, ``np.floor(pc0)``) and jumps
    next to a row.

    Parameters
    ----------
    data : statsmodels ModelData
        The model's data; its ``model_spec`` (patsy ``DesignInfo`` or formulaic
        ``ModelSpec``) is read when needed, so that pickling follows statsmodels (which
        rebuilds the spec on unpickling).
    feature_names : list of str (k,)
    exog_names : list of str (d,)
    phi : ndarray (n, k)
        Features of the fit rows (for the difference steps).
    """

    def __init__(self, data, feature_names, exog_names, phi):
        self._data = data
        model_spec = data.model_spec
        self.feature_names = list(feature_names)
        self.n_params = len(exog_names)
        exog_names = list(exog_names)
        self.plain_cols = np.array([exog_names.index(n) if n in exog_names else -1
                                    for n in self.feature_names])
        moved: dict[int, set] = {f: set() for f in range(len(self.feature_names))}
        for factor in formula_factors(model_spec):
            mentioned = names_in(factor.expression)
            used = [f for f, name in enumerate(self.feature_names) if name in mentioned]
            if not used:
                continue
            if factor.categorical or factor.stateful:
                what = ("codes it by levels (a categorical or boolean term)"
                        if factor.categorical else
                        "uses state learned from the data (a stateful transform such as "
                        "center, standardize or a spline basis)")
                raise NonDifferentiableDesignError(
                    f"The formula term '{factor.expression}' {what} of the learned "
                    f"feature(s) {[self.feature_names[f] for f in used]}. Two-stage "
                    "standard errors need the design to be a differentiable function of "
                    "the features with fixed coefficients; this term is not (or its state "
                    "moves with the first stage). Use smooth terms with fixed constants, "
                    "e.g. I(pc0 - 1.5), I(pc0**2), np.exp(pc0), or a raw covariate.")
            for f in used:
                moved[f].update(factor.columns)
        self._moved = {f: np.array(sorted(c), dtype=int) for f, c in moved.items()}
        self.feature_cols = np.array(sorted(set().union(*moved.values())), dtype=int)
        phi = np.asarray(phi, dtype=float)
        scale = (np.asfortranarray(phi).std(axis=0) if phi.shape[0] > 1  # column-major:
                 else np.ones(phi.shape[1]))                             # 10x faster
        self._steps = np.where(scale > 0, scale, 1.0)

    @property
    def model_spec(self):
        return self._data.model_spec

    def build(self, rows: pd.DataFrame, phi: np.ndarray, spec=None) -> np.ndarray:
        """The design of ``rows`` with features ``phi`` (``spec``: another design spec
        of the same formula, e.g. a subset of its terms; the model's by default)."""
        frame = rows.copy(deep=False)  # copy-on-write: the other columns are shared
        for i, name in enumerate(self.feature_names):
            frame[name] = phi[:, i]
        return design_for(self.model_spec if spec is None else spec, frame,
                          check_missing=False)

    def _moved_terms(self, f: int):
        """``(spec, positions)``: the patsy design of only the terms holding the columns
        feature ``f`` moves, and those columns' positions in it, so that the difference
        steps do not rebuild the other terms (the same term functions on the same data:
        the same values); the whole design for formulaic specs."""
        spec, moved = self.model_spec, self._moved[f]
        if not isinstance(spec, patsy.DesignInfo):
            return None, moved
        terms, columns = [], []
        for term, where in spec.term_slices.items():
            held = np.arange(where.start, where.stop)
            if np.isin(held, moved).any():
                terms.append(term)
                columns.extend(held.tolist())
        return spec.subset(terms), np.array([columns.index(c) for c in moved], dtype=int)

    def jacobian(self, rows: pd.DataFrame, phi: np.ndarray) -> DesignJacobian:
        phi = np.asarray(phi, dtype=float)
        n = phi.shape[0]
        cols, vals = [], []
        base = None
        for f in range(phi.shape[1]):
            moved = self._moved[f]
            if self.is_selector or np.array_equal(moved, self.plain_cols[[f]]):
                cols.append(moved)
                vals.append(np.ones((n, moved.size)))
                continue
            if base is None:
                base = self.build(rows, phi)
            cols.append(moved)
            vals.append(self._derivative(rows, phi, f, base[:, moved]))
        return DesignJacobian(self.n_params, cols, vals)

    def _at(self, rows, phi, f, step, moved):
        spec, positions = moved
        shifted = phi.copy()
        shifted[:, f] += step
        try:
            return self.build(rows, shifted, spec)[:, positions]
        except Exception as exc:  # a level the formula has not seen, a domain error...
            raise NonDifferentiableDesignError(
                f"Evaluating the formula with the learned feature "
                f"'{self.feature_names[f]}' moved slightly failed ({exc}); the design is "
                "not a differentiable function of it. Use smooth terms of the features."
            ) from exc

    def _derivative(self, rows, phi, f, w0) -> np.ndarray:
        s = self._steps[f]
        h = 1e-4 * s
        moved = self._moved_terms(f)
        w_plus, w_minus = self._at(rows, phi, f, s, moved), self._at(rows, phi, f, -s, moved)
        d_h = (self._at(rows, phi, f, h, moved) - self._at(rows, phi, f, -h, moved)) / (2 * h)
        d_h2 = (self._at(rows, phi, f, h / 2, moved)
                - self._at(rows, phi, f, -h / 2, moved)) / h
        local = (4 * d_h2 - d_h) / 3
        name = self.feature_names[f]
        if not np.isfinite(local).all():
            raise NonDifferentiableDesignError(
                f"A formula term of the learned feature '{name}' is undefined next to some "
                "labeled rows (e.g. a log or square root at the edge of its domain); the "
                "two-stage linearisation needs it to be smooth around every row.")
        col_scale = np.maximum(np.abs(np.vstack([w0, w_plus, w_minus])).max(axis=0), _EPS)
        with np.errstate(invalid="ignore"):
            secant = (w_plus - w_minus) / (2 * s)
            second = w_plus + w_minus - 2 * w0
            linear = ((np.abs(second) <= 1e3 * _EPS * col_scale).all(axis=0)
                      & (np.abs(secant - local)
                         <= 1e-6 * (np.abs(local) + col_scale / s)).all(axis=0))
        jump = (np.maximum(np.abs(d_h), np.abs(d_h2)) > 1e3 * col_scale / s).any(axis=0)
        changed = np.maximum(np.abs(w_plus - w0), np.abs(w_minus - w0))
        flat = (np.abs(local) * s <= 1e-6 * changed) & (changed > 1e3 * _EPS * col_scale)
        steps = flat.sum(axis=0) > 0.5 * (changed > 1e3 * _EPS * col_scale).sum(axis=0)
        bad = ~linear & (jump | steps)
        if bad.any():
            raise NonDifferentiableDesignError(
                f"A formula term of the learned feature '{name}' is a step function or "
                "jumps (e.g. np.floor, np.sign, a comparison): it changes with the feature "
                "while its derivative is zero, so the first-stage uncertainty cannot be "
                "propagated by the delta method. Use smooth terms of the features, or "
                "threshold a raw covariate instead.")
        return np.where(linear, secant, local)
