"""The named checks of :func:`~ssl_inference.testing.check_representation`, each against an
independent computation (refits, finite differences, the group action)."""
from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import linalg

from ..exceptions import NotFittedError
from ..representations.base import Representation
from ..representations.linearization import MEstimatorBase, vertical_basis
from ..symmetry import Group, Orthogonal, PermutationProduct, ProductElement, align

__all__ = ["Checker", "Skip"]

#: Relative agreement required of quantities that are equal up to rounding.
EXACT_RTOL = 1e-8
#: Relative agreement of the feature VJP with central differences of the features.
VJP_RTOL = 1e-5
#: Relative agreement of the influence with the (Richardson-extrapolated) contamination
#: derivative of refits: remainder ~ 1/m^3, refits to the optimiser's precision.
REFIT_RTOL = 1e-2
#: |mean| / standard error allowed for quantities that average to zero at the fit.
STATIONARITY_Z = 0.05


class Skip(Exception):
    """A check that does not apply to this first stage (the message says why)."""


class Checker:
    """The checks, sharing one fitted clone and the data."""

    def __init__(self, representation, X_pre, X, rng: np.random.Generator):
        if not isinstance(representation, Representation):
            kind = type(representation)
            raise TypeError(
                "check_representation takes an ssl_inference Representation (a subclass "
                "of ssl_inference.representations.Representation); got "
                f"{kind.__module__}.{kind.__qualname__}.")
        self.original = representation
        self.X_pre = X_pre
        self.X_raw = X
        self.rng = rng
        self._fitted = None
        self._fit_error = None

    def checks(self) -> list[tuple[str, Callable[[], None]]]:
        return [(name, getattr(self, name)) for name in (
            "fit_sets_the_protocol_attributes", "clone_is_unfitted_with_same_params",
            "refit_is_deterministic", "pickle_round_trip", "transform_returns_k_features",
            "estimating_function_is_zero_at_fit", "influence_has_mean_zero",
            "influence_contract_streams_influence", "influence_is_horizontal",
            "influence_matches_refits", "feature_vjp_matches_finite_differences",
            "act_moves_features_by_rho", "act_moves_influence_and_vjp", "align_undoes_act")]

    # ---------------------------------------------------------------- shared state
    @property
    def fitted(self) -> Representation:
        """``clone().fit(X_pre)``, once; later checks are skipped when it fails."""
        if self._fitted is None and self._fit_error is None:
            try:
                out = self.original.clone().fit(self.X_pre)
                self._fitted = out
            except Exception as error:  # noqa: BLE001 - reported by the first check
                self._fit_error = f"{type(error).__name__}: {error}"
        if self._fitted is None:
            raise Skip(f"not run: clone().fit(X_pre) failed ({self._fit_error}).")
        return self._fitted

    @property
    def X(self) -> np.ndarray:
        rep = self.fitted
        if self.X_raw is not None:
            return np.asarray(self.X_raw, dtype=float)
        return np.asarray(rep.pretrain_data_[:30, :rep.n_features_in_], dtype=float)

    @property
    def units(self) -> np.ndarray:
        return self.fitted.pretrain_units()

    def _group_elements(self) -> list:
        """Generators and two Haar draws of the fitted group."""
        group = self.fitted.symmetry_
        return list(group.generators()) + [group.sample(self.rng) for _ in range(2)]

    def _vertical(self) -> np.ndarray:
        """Orthonormal tangent of the orbit in theta, by central differences of ``act``."""
        rep = self.fitted
        group = rep.symmetry_
        if not group.lie_algebra():
            return np.zeros((rep.params_.size, 0))
        h = 1e-6
        cols = [(rep.act(_exp(group, A, h)).params_ - rep.act(_exp(group, A, -h)).params_)
                / (2 * h) for A in _coordinate_algebra(group)]
        return vertical_basis(rep.params_.size, np.column_stack(cols))

    # ---------------------------------------------------------------------- checks
    def fit_sets_the_protocol_attributes(self):
        """``fit`` returns ``self`` and sets the attributes the rest of the package reads."""
        try:
            est = self.original.clone()
            out = est.fit(self.X_pre)
        except Exception as error:
            raise AssertionError(
                f"clone().fit(X_pre) raised {type(error).__name__}: "
                f"{str(error).rstrip('.')}. fit must "
                "accept the pre-training rows it is given (the aligned bootstrap calls "
                "clone().fit on resampled rows).") from None
        self._fitted = est
        problems = []
        if out is not est:
            problems.append("fit must return self")
        theta = getattr(est, "params_", None)
        if not (isinstance(theta, np.ndarray) and theta.ndim == 1 and theta.size
                and np.issubdtype(theta.dtype, np.floating) and np.all(np.isfinite(theta))):
            problems.append("params_ must be a finite 1-D float array (theta_hat)")
        m = len(self.X_pre)
        if getattr(est, "nobs_", None) != m:
            problems.append(f"nobs_ must be the number of pre-training units ({m}); got "
                            f"{getattr(est, 'nobs_', None)!r}")
        group = getattr(est, "symmetry_", None)
        if not isinstance(group, Group):
            problems.append("symmetry_ must be an ssl_inference.symmetry Group")
        elif group.k != est.n_features_out_:
            problems.append(f"symmetry_ acts on {group.k} features but n_features_out_ "
                            f"is {est.n_features_out_}")
        if not isinstance(getattr(est, "n_features_in_", None), (int, np.integer)):
            problems.append("n_features_in_ must be the number of raw columns transform "
                            "takes")
        data = getattr(est, "pretrain_data_", None)
        if not isinstance(data, np.ndarray) or data.shape[0] != m:
            problems.append("pretrain_data_ must hold the m pre-training rows")
        elif data.flags.writeable:
            problems.append("pretrain_data_ must be read-only (set it through the "
                            "Representation.pretrain_data_ property)")
        if not (isinstance(est.gauge_convention, str) and est.gauge_convention.strip()):
            problems.append("gauge_convention must say, in words, how the reported "
                            "representative of each symmetry orbit is chosen")
        names = est.get_feature_names_out()
        if len(names) != est.n_features_out_ or len(set(names)) != len(names):
            problems.append("get_feature_names_out must give n_features_out_ distinct "
                            "names")
        if not isinstance(getattr(est, "fit_warnings_", None), list):
            problems.append("fit_warnings_ must be a list (Representation records it)")
        assert not problems, "; ".join(problems) + "."

    def clone_is_unfitted_with_same_params(self):
        """``clone()`` is an unfitted instance of the same class with equal hyper-parameters."""
        rep = self.fitted
        twin = rep.clone()
        assert type(twin) is type(rep), (
            f"clone() returned a {type(twin).__name__}, not a {type(rep).__name__}.")
        different = [name for name, value in rep.get_params().items()
                     if not _same_value(value, twin.get_params().get(name, object()))]
        assert not different, (
            f"clone() changed the hyper-parameters {different}: get_params() must return "
            "the arguments of __init__ and clone() must pass them back unchanged.")
        try:
            twin.transform(self.X)
        except NotFittedError:
            pass
        else:
            raise AssertionError("clone() returned a fitted object: it must be a fresh, "
                                 "unfitted copy (transform must raise NotFittedError).")

    def refit_is_deterministic(self):
        """Fitting twice on equal data gives the same ``theta_hat`` (the gauge is a rule)."""
        rep = self.fitted
        again = rep.clone().fit(np.array(self.X_pre, copy=True))
        err = _rel(again.params_, rep.params_)
        assert err < 1e-7, (
            f"two fits on equal data differ (relative difference of params_ {err:.1e}): "
            "the gauge convention must pick one representative deterministically, and "
            "random starts must be seeded (random_state).")

    def pickle_round_trip(self):
        """A pickled and restored copy gives the same parameters, features and influence."""
        rep = self.fitted
        try:
            twin = pickle.loads(pickle.dumps(rep))
        except Exception as error:
            raise AssertionError(
                f"pickling failed ({type(error).__name__}: {error}); models and results "
                "that hold the representation cannot be saved. Use module-level functions "
                "rather than lambdas or closures for callables.") from None
        X, U = self.X, self.units[:20]
        ok = (np.array_equal(twin.params_, rep.params_)
              and np.allclose(twin.transform(X), rep.transform(X), rtol=1e-12, atol=0)
              and np.allclose(twin.influence(U), rep.influence(U), rtol=1e-12, atol=0))
        assert ok, "the unpickled copy gives other params_, features or influences."

    def transform_returns_k_features(self):
        """``transform`` gives (n, k) finite features; a DataFrame in gives a DataFrame out."""
        rep = self.fitted
        X = self.X
        phi = rep.transform(X)
        k = rep.n_features_out_
        assert isinstance(phi, np.ndarray) and phi.shape == (len(X), k), (
            f"transform returned shape {np.shape(phi)} for {len(X)} rows; expected "
            f"({len(X)}, {k}).")
        assert np.all(np.isfinite(phi)), "transform returned non-finite features."
        names = getattr(rep, "feature_names_in_", None)
        frame = pd.DataFrame(X, columns=names, index=np.arange(len(X)) + 100)
        out = rep.transform(frame)
        assert (isinstance(out, pd.DataFrame) and out.index.equals(frame.index)
                and list(out.columns) == list(rep.get_feature_names_out())
                and np.allclose(out.to_numpy(), phi, rtol=1e-12, atol=0)), (
            "transform of a DataFrame must return a DataFrame with the same index, columns "
            "get_feature_names_out() and the same numbers.")

    def estimating_function_is_zero_at_fit(self):
        """``theta_hat`` solves the estimating equations: mean psi = 0 on ``X_pre``."""
        rep = self.fitted
        if not isinstance(rep, MEstimatorBase):
            raise Skip("not an MEstimatorBase: no estimating function to check.")
        psi = rep.estimating_function(self.units)
        assert psi.shape == (rep.nobs_, rep.params_.size), (
            f"estimating_function returned shape {psi.shape}; expected (units, q) = "
            f"({rep.nobs_}, {rep.params_.size}).")
        z = _z_scores(psi)
        assert z.max() <= STATIONARITY_Z, (
            f"mean psi_{int(np.argmax(z))} is {z.max():.3g} standard errors from zero: "
            "params_ is not a root of the estimating equations on X_pre, so the influence "
            "(a linearisation at the root) is wrong. Solve them to convergence in fit.")

    def influence_has_mean_zero(self):
        """The influence of the pre-training units has mean zero (it is ``-H^+ psi``)."""
        rep = self.fitted
        IF = rep.influence(self.units)
        assert IF.shape == (rep.nobs_, rep.params_.size), (
            f"influence(pretrain_units()) returned shape {IF.shape}; expected "
            f"({rep.nobs_}, {rep.params_.size}).")
        assert np.all(np.isfinite(IF)), "the influence has non-finite entries."
        z = _z_scores(IF)
        assert z.max() <= STATIONARITY_Z, (
            f"the mean influence of parameter {int(np.argmax(z))} over X_pre is "
            f"{z.max():.3g} standard errors from zero; at a root of the estimating "
            "equations it is exactly zero.")

    def influence_contract_streams_influence(self):
        """The streamed contraction and cluster sums are ``influence`` regrouped."""
        rep = self.fitted
        m, q = rep.nobs_, rep.params_.size
        K = self.rng.normal(size=(3, q))
        dense = rep.influence(self.units) @ K.T
        scale = np.abs(dense).max()
        for rows in (7, m):
            chunks = list(rep.influence_contract(K, chunk_rows=rows))
            starts = [a for a, _, _ in chunks]
            stops = [b for _, b, _ in chunks]
            assert starts[0] == 0 and stops[-1] == m and starts[1:] == stops[:-1], (
                "influence_contract must yield consecutive (start, stop) ranges covering "
                "the pre-training units in order.")
            got = np.vstack([B for _, _, B in chunks])
            assert np.abs(got - dense).max() <= EXACT_RTOL * scale, (
                f"influence_contract(K, chunk_rows={rows}) differs from influence(units) "
                f"@ K' by {np.abs(got - dense).max() / scale:.1e} (relative): the "
                "streamed contraction must be the same numbers, regrouped.")
        groups = np.arange(m) % 5
        sums = rep.influence_sums(K, groups)
        expected = np.vstack([dense[groups == c].sum(axis=0) for c in range(5)])
        assert np.abs(sums - expected).max() <= EXACT_RTOL * scale * m, (
            "influence_sums(K, groups) must be the within-cluster sums of IF K'.")
        cov = rep.influence_covariance(K)
        assert np.allclose(cov, dense.T @ dense / m ** 2, rtol=1e-8, atol=0), (
            "influence_covariance(K) must be sum_i (K IF_i)(K IF_i)' / m^2.")

    def influence_is_horizontal(self):
        """The influence has no component along the symmetry orbit (THEORY.md §2)."""
        rep = self.fitted
        V = self._vertical_or_skip()
        IF = rep.influence(self.units)
        share = np.abs(IF @ V).max() / max(np.abs(IF).max(), np.finfo(float).tiny)
        assert share <= 1e-6, (
            f"the influence has a component along the orbit of {rep.symmetry_.symbol} "
            f"(relative size {share:.1e}): use the horizontal inverse of the Hessian, "
            "-H_h^+ psi with the vertical directions removed "
            "(representations.linearization.horizontal_inverse).")

    def influence_matches_refits(self):
        """``IF(u)`` is the derivative of ``theta_hat`` when unit ``u`` is up-weighted.

        Refits with unit ``u`` duplicated (weight ``+1/(m+1)``) and removed
        (``-1/(m-1)``), both aligned to the fit's gauge, give the central difference
        ``(theta_dup - theta_del) / (1/(m+1) + 1/(m-1))``, whose error is ``O(1/m^2)``;
        the same on ``X_pre`` stacked twice (the same empirical distribution, so the same
        ``theta_hat``) has a quarter of it, and Richardson's combination
        ``(4 D_2m - D_m) / 3`` removes it. Its horizontal part must equal ``IF(u)``.
        """
        rep = self.fitted
        if not rep.influence_by_refit:
            raise Skip(
                f"{type(rep).__name__} declares influence_by_refit = False: its units "
                "share randomness that a refit redraws (e.g. negatives drawn inside fit), "
                "so no refit isolates one unit.")
        data = rep.pretrain_data_
        m = rep.nobs_
        IF = rep.influence(self.units)
        V = self._vertical()
        Pi = np.eye(IF.shape[1]) - V @ V.T
        order = np.argsort(np.linalg.norm(IF @ Pi, axis=1))
        worst = 0.0
        for i in sorted({int(order[-1]), int(order[m // 2]), 0}):
            try:
                steps = [_contamination_difference(rep, np.vstack([data] * copies), i)
                         for copies in (1, 2)]
            except Exception as error:
                raise AssertionError(
                    f"refitting on X_pre with one unit duplicated or removed raised "
                    f"{type(error).__name__}: {str(error).rstrip('.')}. clone().fit must "
                    "refit on new rows "
                    "(the aligned bootstrap does this too).") from None
            fd = (4.0 * steps[1] - steps[0]) / 3.0 @ Pi
            want = IF[i] @ Pi
            err = _rel(fd, want)
            if err > REFIT_RTOL:
                sign = " (it has the wrong sign)" if _rel(fd, -want) < 0.2 else ""
                raise AssertionError(
                    f"the influence of unit {i} differs from the contamination derivative "
                    f"of refits by {err:.2g} (relative){sign}. A correct influence is "
                    "IF(u) = -H_h^+ psi(u) with H the mean derivative of the estimating "
                    "function: (1/m) sum_i IF(u_i) is the first-order change of theta_hat.")
            worst = max(worst, err)
        return f"largest relative difference {worst:.1e} (allowed {REFIT_RTOL:g})"

    def feature_vjp_matches_finite_differences(self):
        """``feature_vjp`` is the derivative of the features at ``params_``.

        Along a random horizontal direction ``d``, the Jacobian-vector product built from
        per-row VJPs must equal the central difference of
        ``with_params(theta +- h d).transform``, up to an infinitesimal motion of the
        features along the orbit (``A phi`` for ``A`` in the Lie algebra of
        ``symmetry_``); the summed VJP must equal the sum of the per-row ones.
        """
        rep = self.fitted
        X = self.X
        n, k, q = len(X), rep.n_features_out_, rep.params_.size
        V = self._vertical()
        d = self.rng.normal(size=q)
        d -= V @ (V.T @ d)
        d *= max(np.abs(rep.params_).max(), 1.0) / np.abs(d).max()
        h = 1e-6
        up = rep.with_params(rep.params_ + h * d).transform(X)
        down = rep.with_params(rep.params_ - h * d).transform(X)
        fd = (up - down) / (2 * h)
        jvp = np.column_stack([
            rep.feature_vjp(X, np.repeat(np.eye(k)[[a]], n, axis=0), per_row=True) @ d
            for a in range(k)])
        phi = rep.transform(X)
        motions = [phi @ A.T for A in rep.symmetry_.lie_algebra()]
        residual = _orthogonal_part(jvp - fd, motions)
        scale = max(np.abs(fd).max(), np.abs(jvp).max(), 1e-300)
        err = np.abs(residual).max() / scale
        if err > VJP_RTOL:
            hint = (" with_params(theta) leaves the features unchanged: override "
                    "_set_params so that the features read the new parameters."
                    if np.abs(fd).max() == 0 else "")
            raise AssertionError(
                f"the Jacobian-vector product from feature_vjp differs from central "
                f"differences of the features by {err:.2g} (relative).{hint} A correct "
                "feature_vjp(X, C) returns sum_j (d phi(x_j)/d theta)' C_j (or per row with "
                "per_row=True).")
        measured = f"relative difference {err:.1e} (allowed {VJP_RTOL:g})"
        C = self.rng.normal(size=(n, k, 2))
        summed = rep.feature_vjp(X, C)
        rows = np.stack([rep.feature_vjp(X, C[:, :, r], per_row=True).sum(axis=0)
                         for r in range(2)], axis=1)
        assert summed.shape == (q, 2) and np.abs(summed - rows).max() <= (
            EXACT_RTOL * max(np.abs(rows).max(), 1e-300)), (
            "feature_vjp(X, C) (q, r) must equal the sum over rows of "
            "feature_vjp(X, C[:, :, r], per_row=True).")
        return measured

    def act_moves_features_by_rho(self):
        """Equivariance: ``act(g).transform(X) = transform(X) rho(g)'`` for every ``g``."""
        rep = self.fitted
        X = self.X
        phi = rep.transform(X)
        before = rep.params_.copy()
        for g in self._group_elements():
            moved = rep.act(g)
            want = phi @ rep.symmetry_.rho(g).T
            err = _rel(moved.transform(X), want)
            assert err <= EXACT_RTOL, (
                f"the features of act(g) differ from rho(g) phi by {err:.1e} (relative) "
                f"for g = {_show(g)}: the feature map must be equivariant, "
                "phi(x; g.theta) = rho(g) phi(x; theta), with rho = symmetry_.rho.")
        assert np.array_equal(rep.params_, before), (
            "act(g) changed the representation it was called on; it must return a copy.")

    def act_moves_influence_and_vjp(self):
        """The first-order change of the features caused by each unit moves by ``rho(g)``.

        ``feature_vjp_g(X, C)' IF_g(u) = feature_vjp(X, rho(g)' C)' IF(u)`` for the moved
        copy ``act(g)``: the influence and the VJP are transported consistently.
        """
        rep = self.fitted
        X, U = self.X, self.units[:25]
        C = self.rng.normal(size=(len(X), rep.n_features_out_, 2))
        for g in self._group_elements():
            R = rep.symmetry_.rho(g)
            moved = rep.act(g)
            got = moved.influence(U) @ moved.feature_vjp(X, C)
            want = rep.influence(U) @ rep.feature_vjp(X, np.einsum("ji,njr->nir", R, C))
            err = _rel(got, want)
            assert err <= 1e-6, (
                f"after act(g) (g = {_show(g)}) the first-order change of the features "
                f"caused by a pre-training unit differs from rho(g) times the original by "
                f"{err:.1e} (relative): act must move the influence (IF -> T IF, "
                "T = d(g.theta)/d theta) and the feature VJP with the parameters.")

    def align_undoes_act(self):
        """``align(act(g), rep)`` brings the moved copy back: same parameters and features."""
        rep = self.fitted
        X = self.X
        for g in self._group_elements():
            back, _ = align(rep.act(g), rep)
            err = max(_rel(back.params_, rep.params_), _rel(back.transform(X),
                                                            rep.transform(X)))
            assert err <= 1e-7, (
                f"align(act(g), rep) is {err:.1e} (relative) away from rep for "
                f"g = {_show(g)}: alignment_coordinates() must return rows that move with "
                "rho(g), so that symmetry_.align recovers g.")

    def _vertical_or_skip(self) -> np.ndarray:
        group = self.fitted.symmetry_
        if not group.lie_algebra():
            raise Skip(f"the group {group.symbol} is finite: no vertical directions.")
        V = self._vertical()
        if not V.shape[1]:
            raise Skip(f"the continuous part of {group.symbol} does not move theta (it "
                        "moves only the features): no vertical directions.")
        return V


# --------------------------------------------------------------------------- helpers
def _coordinate_algebra(group: Group) -> list[np.ndarray]:
    """Lie-algebra basis in the coordinates that :func:`_exp` exponentiates."""
    if isinstance(group, PermutationProduct):
        return group.coordinates.lie_algebra()
    if isinstance(group, Orthogonal):
        return group.lie_algebra()
    raise Skip(f"the check does not know the one-parameter subgroups of {group.symbol} "
                "(it knows Orthogonal and PermutationProduct).")


def _exp(group: Group, A: np.ndarray, t: float):
    """The group element ``exp(t A)``."""
    if isinstance(group, PermutationProduct):
        return ProductElement(np.arange(group.n_blocks), linalg.expm(t * A))
    return linalg.expm(t * A)


def _contamination_difference(rep: Representation, data: np.ndarray, i: int) -> np.ndarray:
    """``(theta(+u_i) - theta(-u_i)) / (1/(n+1) + 1/(n-1))`` from aligned refits on ``data``."""
    n = len(data)
    dup, dele = (align(rep.clone().fit(rows), rep)[0].params_
                 for rows in (np.vstack([data, data[i:i + 1]]), np.delete(data, i, axis=0)))
    return (dup - dele) / (1.0 / (n + 1) + 1.0 / (n - 1))


def _orthogonal_part(R: np.ndarray, motions: list[np.ndarray]) -> np.ndarray:
    """``R`` (n, k) minus its least-squares projection on the span of ``motions``."""
    if not motions:
        return R
    B = np.column_stack([M.ravel() for M in motions])
    coef = np.linalg.lstsq(B, R.ravel(), rcond=None)[0]
    return R - (B @ coef).reshape(R.shape)


def _z_scores(rows: np.ndarray) -> np.ndarray:
    """|column mean| / its standard error, with a floor for exactly constant columns."""
    m = rows.shape[0]
    mean = rows.mean(axis=0)
    rms = np.sqrt((rows ** 2).mean(axis=0))
    se = rows.std(axis=0) / np.sqrt(m) + 1e-10 * rms.max(initial=0.0) + np.finfo(float).tiny
    return np.abs(mean) / se


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), np.abs(a).max(), 1e-300))


def _same_value(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except Exception:  # noqa: BLE001 - objects without a comparison
        return False


def _show(g) -> str:
    text = np.array2string(np.asarray(g[1] if isinstance(g, tuple) else g), precision=2,
                           separator=",", max_line_width=60).replace("\n", "")
    return (f"(labels {list(np.asarray(g[0]))}, {text})" if isinstance(g, tuple) else text)
