r"""What the resampling covariances share: one replicate's refit, degenerate replicates,
spreads, and running replicates with a progress bar, in parallel.

A replicate (bootstrap resample, or jackknife deletion) refits the whole pipeline on
some pre-training rows and some labeled rows: the representation is refitted, moved
onto the full-sample fit's gauge (:func:`ssl_inference.align`), the labeled features are
recomputed and the second stage is refitted with the options of the user's ``fit``.

Degenerate replicates
---------------------
A replicate is *degenerate* when its refit is not a regular point estimate:

* first stage: the refit recorded an ``IdentificationWarning`` or ``ConvergenceWarning``
  (``fit_warnings_``: collapsed mixture component, Heywood case, nearly tied
  eigenvalues, singular Hessian, non-converged EM or optimiser...) that the
  full-sample fit did not record, or raised. A warning the full-sample fit has too
  (compared by :func:`reason_of`, e.g. "Eigenvalues # and # ... are nearly tied") does
  not make a replicate degenerate: the replicate is then as regular as the estimate
  whose spread it measures, and the summary already shows that warning; such
  replicates are kept and counted (``DegenerateReplicates.repeated``);
* alignment: :func:`~ssl_inference.align` raised, or the alignment is ambiguous
  (:func:`alignment_problem`: the refit is not near one point of the full-sample fit's
  symmetry orbit);
* second stage: statsmodels' ``ConvergenceWarning`` or ``PerfectSeparationWarning``,
  ``mle_retvals["converged"]`` (or GLM's ``converged``) False, an exception (singular
  design, perfect prediction), or non-finite coefficients.

Rule: degenerate replicates are dropped from the spread and counted (with their
reasons, :class:`DegenerateReplicates`, shown in ``summary()``); when more than
``max_degenerate`` of them (default 10%) are degenerate the covariance is refused
(:meth:`DegenerateReplicates.check`): the replicates left would describe the
resamples on which the pipeline behaves, not its sampling distribution.
"""
from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import pickle
import re
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from statsmodels.tools import sm_exceptions

from .exceptions import ConvergenceWarning, IdentificationWarning
from .representations.base import Representation
from .symmetry import Orthogonal, Permutations, SignFlips
from .symmetry import align as align_to

__all__ = ["DEFAULT_MAX_DEGENERATE", "DegenerateReplicates", "ReplicateFit",
           "alignment_problem", "check_n_jobs", "refit_replicate", "robust_covariance",
           "run_replicates"]

logger = logging.getLogger("ssl_inference")

#: Largest share of degenerate replicates that is dropped; more is refused.
DEFAULT_MAX_DEGENERATE = 0.1
#: An aligned feature (or subspace) further than arccos(0.5) = 60 degrees from the
#: full-sample one has no well-defined match: the alignment is ambiguous.
ALIGNMENT_COSINE = 0.5
#: Estimated duration (seconds) above which a run without a visible progress bar
#: logs what it is doing.
ANNOUNCE_SECONDS = 60.0
#: second-stage warnings that make a replicate degenerate
SECOND_STAGE_WARNINGS = {sm_exceptions.ConvergenceWarning: "second stage did not converge",
                         sm_exceptions.PerfectSeparationWarning:
                             "second stage: perfect separation"}


# ------------------------------------------------------------------ degenerate replicates
@dataclass(frozen=True)
class DegenerateReplicates:
    """The replicates dropped as degenerate, and why.

    Attributes
    ----------
    total : int
        Replicates computed (bootstrap resamples, or jackknife units).
    indices : ndarray of int
        Positions of the dropped replicates among the ``total``.
    reasons : tuple of str
        One reason per dropped replicate (the first problem found).
    params : ndarray (count, d)
        Their second-stage coefficients (NaN where a stage failed), to see what keeping
        them would have done.
    repeated : int
        Kept replicates whose first stage repeated a warning of the full-sample fit.
    details : dict
        Reason -> the full message (warning or exception) of its first replicate.

    Examples
    --------
    >>> dropped = DegenerateReplicates(200, np.array([7]), ("second stage did not "
    ...                                "converge",), np.full((1, 2), np.nan))
    >>> print(dropped)
    1 of 200 replicates degenerate and dropped (0.5%): second stage did not converge (1).
    """

    total: int
    indices: np.ndarray
    reasons: tuple
    params: np.ndarray
    repeated: int = 0
    details: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of dropped replicates."""
        return len(self.reasons)

    @property
    def fraction(self) -> float:
        return self.count / self.total if self.total else 0.0

    def counts(self) -> dict[str, int]:
        """Reason -> number of replicates, most frequent first."""
        return dict(Counter(self.reasons).most_common())

    def __str__(self) -> str:
        repeated = (f" {self.repeated} kept replicates repeated the full-sample first "
                    "stage's warnings." if self.repeated else "")
        if not self.count:
            return f"0 of {self.total} replicates degenerate.{repeated}"
        listed = "; ".join(f"{reason} ({k})" for reason, k in self.counts().items())
        return (f"{self.count} of {self.total} replicates degenerate and dropped "
                f"({100 * self.fraction:.1f}%): {listed}.{repeated}")

    def check(self, max_fraction: float, what: str, first_stage_warnings=()) -> None:
        """Refuse when more than ``max_fraction`` of the replicates are degenerate.

        Raises
        ------
        ValueError
            With the reasons, what the full-sample first stage warned, and what to do.
        """
        kept = self.total - self.count
        if self.fraction <= max_fraction and kept >= 2:
            return
        common = next(iter(self.counts()), None)
        note = ""
        if self.details.get(common):
            full = self.details[common].strip()
            note += f" The first '{common}' in full: {full}" + ("" if full.endswith(".")
                                                                 else ".")
        if first_stage_warnings:
            note = (" The full-sample first stage warned too ("
                    + "; ".join(reason_of(w) for w in first_stage_warnings)
                    + "), so its analytic standard errors are unreliable as well.")
        raise ValueError(
            f"{self.count} of {self.total} {what} replicates were degenerate "
            f"({100 * self.fraction:.1f}%, more than max_degenerate={max_fraction:g}): "
            + "; ".join(f"{reason} ({k})" for reason, k in self.counts().items())
            + ". Dropping them would leave the replicates on which the pipeline behaves, "
            "whose spread is not the sampling distribution of the estimate, and keeping "
            f"them would let a few broken refits dominate it.{note} Make the first stage "
            "well identified (fewer components or factors, more pre-training rows), check "
            "the second stage for separation, or, to accept the trimmed replicates, raise "
            "cov_kwds['max_degenerate'] (a fraction of the replicates).")

    @classmethod
    def collect(cls, fits: list["ReplicateFit"], d: int) -> tuple[np.ndarray, list[int],
                                                               "DegenerateReplicates"]:
        """Kept coefficients (R, d), kept positions, and the dropped replicates (``d``
        the number of flat coefficients when no replicate has any)."""
        bad = [i for i, fit in enumerate(fits) if fit.problem is not None]
        kept = [i for i, fit in enumerate(fits) if fit.problem is None]
        d = next((np.size(fit.params) for fit in fits if fit.params is not None), d)
        params = np.array([fits[i].params for i in kept]).reshape(len(kept), d)
        dropped = np.array([np.full(d, np.nan) if fits[i].params is None else fits[i].params
                            for i in bad]).reshape(len(bad), d)
        repeated = sum(fits[i].repeated for i in kept)
        details: dict = {}
        for i in bad:
            details.setdefault(fits[i].problem, fits[i].detail)
        return params, kept, cls(len(fits), np.array(bad, dtype=int),
                                 tuple(fits[i].problem for i in bad), dropped, repeated,
                                 details)


def reason_of(message: str) -> str:
    """A warning message's first clause with numbers replaced by ``#``: a short reason
    under which equal problems of different replicates are counted together.

    >>> reason_of("Component 2 of the mixture has collapsed: weight 0.0207, about 20.7 rows")
    'Component # of the mixture has collapsed'
    """
    clause = re.split(r"[:;(]|\.\s|\.$", str(message).strip(), maxsplit=1)[0]
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", clause).strip()


# ------------------------------------------------------------------ one replicate
@dataclass(frozen=True)
class ReplicateFit:
    """One replicate: coefficients, the aligned representation (pre-training data
    dropped; the full-sample one when it was reused; None when the refit failed), the
    reason it is degenerate (None when it is not), whether its first stage repeated a
    warning of the full-sample fit, and the full message behind the reason."""

    params: np.ndarray | None
    representation: object
    problem: str | None
    repeated: bool = False
    detail: str | None = None


def alignment_problem(group, moved: np.ndarray, reference: np.ndarray) -> str | None:
    """Why an aligned refit has no well-defined match in the reference's orbit, or None.

    ``moved`` and ``reference`` are the ``alignment_coordinates()`` of the aligned refit
    and of the full-sample fit. An angle of more than 60 degrees
    (:data:`ALIGNMENT_COSINE`) means the data no longer pick the group element:

    * sign flips: a feature's row at more than 60 degrees from the reference's, so its
      sign is arbitrary (e.g. two principal components swapped);
    * rotations ``O(k)``: the spans of the rows differ by a principal angle of more
      than 60 degrees (the subspace itself moved);
    * label permutations: a component's nearest reference component is not the one it
      was matched to (two components merged, one split or collapsed).

    Other groups are not checked.

    Examples
    --------
    >>> from ssl_inference.symmetry import SignFlips
    >>> alignment_problem(SignFlips(2), np.eye(2), np.array([[1.0, 0.1], [1.0, 0.3]]))
    'alignment ambiguous: feature 1 is more than 60 degrees from the full-sample one'
    """
    A, B = np.asarray(moved, dtype=float), np.asarray(reference, dtype=float)
    if isinstance(group, SignFlips):
        cos = np.einsum("ij,ij->i", A, B) / np.maximum(
            np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1), np.finfo(float).tiny)
        bad = np.flatnonzero(np.abs(cos) < ALIGNMENT_COSINE)
        if bad.size:
            return (f"alignment ambiguous: feature {int(bad[0])} is more than 60 degrees "
                    "from the full-sample one")
    elif isinstance(group, Orthogonal):
        qa, qb = np.linalg.qr(A.T)[0], np.linalg.qr(B.T)[0]
        if np.linalg.svd(qa.T @ qb, compute_uv=False).min() < ALIGNMENT_COSINE:
            return ("alignment ambiguous: the feature subspace is more than 60 degrees "
                    "from the full-sample one")
    elif isinstance(group, Permutations):
        A = A.reshape(group.n_blocks, -1)
        B = B.reshape(group.n_blocks, -1)
        nearest = ((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        if np.any(nearest != np.arange(group.n_blocks)):
            return ("alignment ambiguous: a component is nearest to another full-sample "
                    "component than the one it was matched to")
    return None


def _second_stage(model, endog, design, rows, fit_kwds):
    """Refit the plain second stage: coefficients, a problem (or None) and its full
    message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = model._plain_fit(endog, design, rows, fit_kwds)
        except (ValueError, ArithmeticError, sm_exceptions.PerfectSeparationError) as exc:
            return (None, f"second stage failed: {type(exc).__name__}: {reason_of(exc)}",
                    str(exc))
    params = model._flat(results.params)
    for w in caught:
        for category, reason in SECOND_STAGE_WARNINGS.items():
            if issubclass(w.category, category):
                return params, reason, str(w.message)
    retvals = getattr(results, "mle_retvals", None) or {}
    if retvals.get("converged", True) is False or getattr(results, "converged", True) is False:
        return params, SECOND_STAGE_WARNINGS[sm_exceptions.ConvergenceWarning], None
    if not np.all(np.isfinite(params)):
        return params, "non-finite second-stage coefficients", None
    return params, None, None


def refit_replicate(model, X_pre: np.ndarray | None, pre_rows, lab_rows, *, fit_kwds: dict,
                    align: bool = True, random_state=None) -> ReplicateFit:
    """Refit the pipeline on pre-training rows ``pre_rows`` and labeled rows ``lab_rows``.

    ``X_pre`` is the full-sample representation's pre-training data (read once by the
    caller); ``pre_rows=None`` keeps the full-sample representation (a replicate that
    changes only the labeled rows). The representation is refitted on the full
    ``X_pre`` with unit weights, the count of each unit in ``pre_rows``
    (:meth:`~ssl_inference.representations.base.Representation._fit_weighted`): the
    built-in first stages never gather ``X_pre[pre_rows]``; a representation that only
    implements ``fit`` gets that copy of the resample, ``fit(X_pre[pre_rows])``.
    ``random_state`` replaces an unset (None) or shared (Generator) ``random_state``
    hyper-parameter of the representation, so that refits with random
    starts are reproducible whatever process runs them. First-stage and second-stage
    warnings are recorded as the replicate's problem instead of being shown; a
    first-stage warning the full-sample fit has too is no problem (module docstring).
    """
    rep = model.representation
    problem = detail = None
    repeated = False
    refit = rep
    if pre_rows is not None:
        clone = rep.clone()
        if random_state is not None and not isinstance(
                clone.get_params().get("random_state", 0), (int, np.integer)):
            clone.random_state = random_state
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (IdentificationWarning, ConvergenceWarning))
            try:
                refit = _refit_first_stage(clone, X_pre, pre_rows)
            except (ValueError, ArithmeticError) as exc:
                return ReplicateFit(None, None, f"first stage failed: {type(exc).__name__}: "
                                                f"{reason_of(exc)}", detail=str(exc))
        known = {reason_of(w) for w in getattr(rep, "fit_warnings_", ())}
        reasons = [reason_of(w) for w in getattr(refit, "fit_warnings_", ())]
        new = [reason for reason in reasons if reason not in known]
        problem = f"first stage: {new[0]}" if new else None
        detail = next((w for w in refit.fit_warnings_ if reason_of(w) in new), None)
        repeated = bool(reasons) and not new
        if align:
            try:
                refit, _ = align_to(refit, rep)
            except (ValueError, ArithmeticError, NotImplementedError) as exc:
                return ReplicateFit(None, None, f"alignment failed: {reason_of(exc)}",
                                    detail=str(exc))
            problem = problem or alignment_problem(rep.symmetry_,
                                                   refit.alignment_coordinates(),
                                                   rep.alignment_coordinates())
        if refit is not rep:
            refit = _without_pretrain_data(refit)
    lab_rows = np.arange(model.exog.shape[0]) if lab_rows is None else lab_rows
    endog = np.asarray(model.endog, dtype=float)[lab_rows]
    design = model.feature_design.build(model._design_rows(lab_rows),
                                        refit._transform(model.features[lab_rows]))
    params, second, second_detail = _second_stage(model, endog, design, lab_rows, fit_kwds)
    return ReplicateFit(params, refit if params is not None else None, problem or second,
                        repeated, detail if problem else second_detail)


def _refit_first_stage(clone, X_pre, pre_rows):
    """``clone`` refitted on the resample ``pre_rows`` of ``X_pre``: its weighted fit
    with the counts of the units, unless a subclass overrides ``fit`` below the class
    that defines the weighted fit (e.g. ``class MyPCA(ssi.PCA)`` with its own ``fit``):
    then the inherited weighted fit would bypass that ``fit``, and the gathered copy
    ``fit(X_pre[pre_rows])`` is refitted instead."""
    pre_rows = np.asarray(pre_rows, dtype=np.intp)
    counts = np.bincount(pre_rows, minlength=X_pre.shape[0])
    mro = type(clone).__mro__
    fit_owner = next(c for c in mro if "fit" in c.__dict__)
    weighted_owner = next(c for c in mro if "_fit_weighted" in c.__dict__)
    if issubclass(weighted_owner, fit_owner):
        return clone._fit_weighted(X_pre, counts, pre_rows)
    return Representation._fit_weighted(clone, X_pre, counts, pre_rows)


def _without_pretrain_data(rep):
    """A shallow copy of a refitted representation without its resample's rows."""
    out = copy.copy(rep)
    out.pretrain_data_ = None
    return out


# ------------------------------------------------------------------ spreads
def robust_scale(values: np.ndarray, spread: str) -> np.ndarray:
    r"""Robust standard deviation of each column: ``IQR / 1.349`` (``"iqr"``) or
    ``1.4826 median|x - median(x)|`` (``"mad"``); both equal the SD for normal data.

    >>> x = np.random.default_rng(0).normal(size=(20000, 1))
    >>> bool(abs(robust_scale(x, "iqr")[0] - 1) < 0.03)
    True
    """
    if spread == "iqr":
        q25, q75 = np.quantile(values, [0.25, 0.75], axis=0)
        return (q75 - q25) / 1.3489795003921634
    centre = np.median(values, axis=0)
    return 1.482602218505602 * np.median(np.abs(values - centre), axis=0)


def robust_covariance(values: np.ndarray, spread: str) -> np.ndarray:
    r"""Covariance of replicates from robust scales (Gnanadesikan-Kettenring).

    With ``s_i`` the robust scale of column ``i`` (:func:`robust_scale`) and the
    standardised columns ``z_i = x_i / s_i``, the correlation is

    .. math:: r_{ij} = \frac{s(z_i + z_j)^2 - s(z_i - z_j)^2}
                             {s(z_i + z_j)^2 + s(z_i - z_j)^2},

    (for normal data the usual correlation), projected onto the positive semi-definite
    correlation matrices (negative eigenvalues set to zero, diagonal rescaled to one);
    the covariance is ``diag(s) R diag(s)``. A few wild replicates move neither the
    scales nor the correlations much.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 2]], size=20000)
    >>> x[:20] = 1e6                                   # a few broken replicates
    >>> np.round(robust_covariance(x, "mad"), 1)
    array([[1. , 0.5],
           [0.5, 2. ]])
    """
    values = np.asarray(values, dtype=float)
    scale = robust_scale(values, spread)
    safe = np.where(scale > 0, scale, 1.0)
    z = values / safe
    plus = robust_scale((z[:, :, None] + z[:, None, :]).reshape(len(z), -1), spread) ** 2
    minus = robust_scale((z[:, :, None] - z[:, None, :]).reshape(len(z), -1), spread) ** 2
    d = values.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = ((plus - minus) / (plus + minus)).reshape(d, d)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    lam, vec = np.linalg.eigh((corr + corr.T) / 2)
    corr = (vec * np.clip(lam, 0.0, None)) @ vec.T
    norm = np.sqrt(np.clip(np.diag(corr), np.finfo(float).tiny, None))
    corr = corr / np.outer(norm, norm)
    return corr * np.outer(scale, scale)


# ------------------------------------------------------------------ running replicates
def check_n_jobs(n_jobs) -> int:
    """Validate ``n_jobs`` (1: in this process; k > 1: k processes; -1: all cores,
    -2: all but one, ...) and return the number of processes.

    >>> check_n_jobs(1)
    1
    """
    if not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise ValueError(f"cov_kwds['n_jobs'] must be a non-zero integer (1: no parallelism, "
                         f"k > 1: k processes, -1: all cores); got {n_jobs!r}.")
    cores = os.cpu_count() or 1
    return int(n_jobs) if n_jobs > 0 else max(1, cores + 1 + int(n_jobs))


_WORKER_TASK = None  # the replicate function of a worker process (set by _install)


def _install(task) -> None:
    global _WORKER_TASK
    _WORKER_TASK = task


def _run_installed(argument):
    return _WORKER_TASK(argument)


def _pool(task, n_jobs: int) -> ProcessPoolExecutor:
    """Worker processes that know ``task``: forked where possible (nothing is pickled:
    the workers inherit the model), otherwise spawned with ``task`` pickled."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods:
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("spawn")
        try:
            pickle.dumps(task)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means the same
            raise ValueError(
                f"n_jobs={n_jobs} needs worker processes, and on this platform they "
                f"receive the model by pickling, which failed ({exc}); formula models "
                "cannot be pickled. Use n_jobs=1, or build the model from arrays.") from None
    return ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_install,
                               initargs=(task,))


def run_replicates(task, arguments: list, *, n_jobs: int = 1, progress: bool = True,
                   desc: str = "replicates") -> list:
    """``[task(a) for a in arguments]``, in order, with a progress bar, in ``n_jobs``
    processes.

    The output does not depend on ``n_jobs`` (each argument carries everything its
    replicate draws from, e.g. its own ``SeedSequence``). ``progress``: a tqdm bar
    when the output is interactive (``disable=None``), with the elapsed and
    remaining time; when no bar shows and the first replicates predict more than a
    minute, the estimate is logged (logger ``"ssl_inference"``, level WARNING) so a
    long run is never silent. ``progress=False``: nothing.
    """
    from tqdm.auto import tqdm

    total = len(arguments)
    bar = tqdm(total=total, desc=desc, leave=False, disable=None if progress else True)
    announce = progress and bar.disable
    start = time.perf_counter()
    out = []
    pool = None
    try:
        if n_jobs == 1 or total < 2:
            results = map(task, arguments)
        else:
            pool = _pool(task, n_jobs)
            chunk = max(1, total // (8 * n_jobs))
            results = pool.map(_run_installed, arguments, chunksize=chunk)
        for result in results:
            out.append(result)
            bar.update(1)
            if announce:
                announce = _announce(desc, len(out), total, time.perf_counter() - start,
                                     n_jobs)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def _announce(desc: str, done: int, total: int, elapsed: float, n_jobs: int) -> bool:
    """Log the expected duration once it is known; return whether still to announce."""
    if done < min(3, total) and elapsed < 5.0:
        return True
    expected = elapsed / done * total
    if expected > ANNOUNCE_SECONDS:
        logger.warning(
            "%s: %d replicates, about %.3g s each in %d process(es): %.1f minutes in all "
            "(estimated from the first %d). cov_kwds: 'n_jobs' (-1: all cores) runs them "
            "in parallel, fewer 'reps' end sooner.", desc, total, elapsed / done * n_jobs,
            n_jobs, expected / 60, done)
    return False
