r"""Two-stage (Murphy-Topel) covariance of second-stage functionals.

For functionals ``f = L_beta beta + L_theta theta`` the total influence is
(THEORY.md §3.2-3.4)

.. math::

    f_hat - f^* \approx \sum_j L_\beta a^*_j + \frac{1}{m} \sum_i K\, IF(x_i),
    \qquad K = L_\beta J + L_\theta,

where ``a*_j`` is the second-stage influence of labeled row j and ``J`` the
first-stage Jacobian of the coefficients. Hence

``Cov = L_beta Cov_2 L_beta'  +  (1/m^2) sum_i (K IF_i)(K IF_i)'  +  cross``,

with ``Cov_2`` the statsmodels second-stage covariance (so everything reduces to
statsmodels when the first stage is known), the pre-training sum taken over
clusters of ``pretrain_groups`` when given, and the cross term

``cross = sum_u (L_beta A_u)(K B_u)' + transpose``

over the units ``u`` that have rows in both samples: labeled rows that are also
pre-training rows (``pretrain_index``), or, with clusters, every cluster whose label
appears in both ``groups`` and ``pretrain_groups`` (``A_u``, ``B_u``: the unit's summed
second-stage and first-stage influences), whether or not rows overlap.

The pre-training sums are computed once per fitted pipeline and cached on the span of
the directions ``K`` seen so far (:meth:`TwoStageCovariance.first_stage_gram`): later
functionals in that span (predictions, margins, tests, risk summaries) cost
``O(r t^2)`` and read no pre-training data; one outside it extends the span with one
chunked pass over ``X_pre``.

Small-sample factors (``linearmodels``' ``debiased`` is the model: each part is
scaled by its own sample's cluster-count factor). Every part is a sum over units of
outer products of influences, so the factors are applied to the influences:

* labeled rows: statsmodels' weight ``c_j`` of the chosen second-stage estimator
  (:func:`labeled_influence_weights`; ``Cov_2`` is statsmodels' own);
* pre-training rows: ``c_pre = G_pre / (G_pre - 1)``, ``G_pre`` the number of
  pre-training clusters (``m`` without clusters; with ``G = n`` singleton clusters
  CRV1 is HC1, so rows and clusters follow one rule). The parameter-count factor
  ``(m - 1)/(m - q)`` of CRV1 is left out: the first-stage influence lives in the
  quotient of a possibly high-dimensional parameter space, where ``q`` is no
  degrees-of-freedom count;
* cross: ``sum_u sqrt(c_u) A_u sqrt(c_pre) B_u'`` plus its transpose.

Total: ``Cov_2 + c_pre P + sqrt(c_pre) X_c`` with ``P`` and ``X_c`` the unscaled
pre-training and cross parts (``X_c`` built from the weighted ``a_j``). Without a
small-sample correction of the second stage (HC0, ``use_correction=False``) all
factors are 1: the plain stacked M-estimation sandwich.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .bootstrap import SPREADS
from .jackknife import JACKKNIFE_METHODS
from .representations.base import Representation
from .resampling import DEFAULT_MAX_DEGENERATE, check_n_jobs

__all__ = ["COV_OPTIONS_DOC", "CovarianceSpec", "TwoStageCovariance", "VarianceParts",
           "labeled_influence_weights"]

SECOND_STAGE_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster", "HAC")
#: the cov_kwds of each second-stage estimator (statsmodels' names and meanings)
SECOND_STAGE_KWDS = {"nonrobust": (), "HC0": (), "HC1": (), "HC2": (), "HC3": (),
                     "cluster": ("groups", "use_correction"),
                     "HAC": ("maxlags", "kernel", "use_correction")}
ESTIMATOR_KWDS = ("groups", "use_correction", "maxlags", "kernel")
HAC_KERNELS = ("bartlett", "uniform")
COV_TYPES = ("two-stage", "naive", "bootstrap", "jackknife") + SECOND_STAGE_TYPES
#: the keys every resampling covariance takes
RESAMPLING_KWDS = ("groups", "pretrain_groups", "seed", "n_jobs", "progress", "max_degenerate")
COV_KWDS = {"two-stage": ("second_stage", *ESTIMATOR_KWDS, "pretrain_groups"),
            "naive": ("second_stage", *ESTIMATOR_KWDS, "pretrain_groups"),
            "bootstrap": ("reps", "alpha", "spread", *RESAMPLING_KWDS),
            "jackknife": ("method", *RESAMPLING_KWDS),
            **{name: (*keys, "pretrain_groups") for name, keys in SECOND_STAGE_KWDS.items()}}

#: The ``cov_type`` / ``cov_kwds`` documentation shared by every two-stage ``fit``.
COV_OPTIONS_DOC = """\
cov_type : str, optional
    How the covariance of the coefficients is estimated. Every option but
    ``"naive"`` includes the first stage:

    * ``"two-stage"`` (default with a representation): the second-stage
      covariance chosen by ``cov_kwds["second_stage"]`` plus the first-stage
      (pre-training) term and, when units have rows in both samples (overlapping
      rows, or clusters present in both ``groups`` and ``pretrain_groups``), the
      cross term (THEORY.md §3).
    * statsmodels' names ``"nonrobust"``, ``"HC0"``, ``"HC1"``, ``"HC2"``,
      ``"HC3"``, ``"cluster"``, ``"HAC"``: ``"two-stage"`` with that second-stage
      estimator; ``fit(cov_type="HC1")`` is ``fit(cov_kwds={"second_stage":
      "HC1"})``. The summary's "Covariance Type:" then reads e.g.
      ``two-stage HC1``.
    * ``"naive"``: exactly what statsmodels reports for the same second stage
      (``second_stage`` and its keys as below), the learned features treated as
      known.
    * ``"bootstrap"``: two-sample bootstrap; both samples are resampled and the
      representation is refitted and aligned to this fit's gauge in each
      replicate.
    * ``"jackknife"``: two-stage delete-one-unit jackknife; each unit (a row, or
      a cluster with ``groups`` / ``pretrain_groups``) is deleted from both
      samples in turn and the pipeline refitted and aligned; the stratified
      jackknife variance (:mod:`ssl_inference.jackknife`).
cov_kwds : dict, optional
    Options of ``cov_type``; a key that does not belong to it raises
    ``ValueError``.

    * ``second_stage`` ("two-stage", "naive"): the second-stage estimator,
      ``"nonrobust"`` (default), ``"HC0"``, ``"HC1"``, ``"HC2"``, ``"HC3"``,
      ``"cluster"`` or ``"HAC"``. GLM, Logit, Probit, Poisson and the other
      likelihood second stages (negative binomial, MNLogit, ...) take
      ``"nonrobust"``, ``"HC0"`` and ``"cluster"`` only (statsmodels
      computes HC0 whatever HC number is named there; ``"naive"`` keeps its
      behaviour); ``"HAC"`` is for OLS/WLS.
    * ``groups`` ("cluster", "bootstrap", "jackknife"): cluster labels of the
      labeled rows, one per row (or a column name of ``data`` with formulas).
      The bootstrap resamples the labeled clusters, the jackknife deletes them.
    * ``use_correction`` ("cluster", "HAC"): statsmodels' small-sample
      correction of the second stage (default True for "cluster": CRV1, False
      for "HAC"). It also switches the first-stage factor (below).
    * ``maxlags`` ("HAC", required): the highest lag of the Newey-West kernel;
      the labeled rows must be in time order. ``kernel``: ``"bartlett"``
      (default) or ``"uniform"``. With overlap (``pretrain_index``) HAC is
      refused: the serial dependence of the labeled rows would carry into the
      pre-training rows they share, whose time order the first stage does not
      know.
    * ``pretrain_groups`` (every cov_type): cluster labels of the pre-training
      rows, one per row of ``X_pre``; the first-stage term sums the influences of
      a cluster before squaring (the bootstrap resamples these clusters, the
      jackknife deletes them). Labels
      equal across ``groups`` and ``pretrain_groups`` denote the same cluster,
      with or without overlapping rows: its influences from both samples are
      summed (the cross term), and overlapping rows must carry the same label in
      both arrays.
    * ``reps`` ("bootstrap"): number of replicates (default 999; the Monte Carlo
      error of a bootstrap SE is about SE / sqrt(2 reps), 2.2% at 999);
      ``alpha``: level of the percentile and basic intervals (default 0.05);
      ``spread``: ``"sd"`` (default, the replicates' covariance), ``"iqr"``
      (IQR / 1.349) or ``"mad"`` (1.4826 x median absolute deviation), robust
      scales with Gnanadesikan-Kettenring correlations.
    * ``method`` ("jackknife"): ``"exact"`` (default: refit without each unit)
      or ``"one-step"`` (one Newton step of each stage from the full-sample
      estimate, no refits: for large samples). With ``use_t=True`` jackknife
      tests and intervals use t with ``G - 1`` degrees of freedom, ``G`` the
      units (clusters or rows) of the smaller sample.
    * ``seed`` ("bootstrap", "jackknife"): makes the replicates reproducible
      (also the random starts of a representation whose ``random_state`` is
      None), the same for every ``n_jobs``.
    * ``n_jobs`` ("bootstrap", "jackknife"): worker processes for the replicates
      (default 1; -1: all cores); set ``OMP_NUM_THREADS=1`` with several.
    * ``progress`` ("bootstrap", "jackknife"): a progress bar with the remaining
      time when the output is interactive, and a logged estimate when a run
      without one will take more than a minute (default True); False: silent.
    * ``max_degenerate`` ("bootstrap", "jackknife"): degenerate replicates (a
      first-stage refit that warned, e.g. a collapsed mixture component, a
      Heywood case, nearly tied eigenvalues or no convergence; an ambiguous
      alignment; a second stage that did not converge or separates
      perfectly) are dropped and counted (``degenerate_replicates``, the
      summary); if more than this fraction are (default 0.1), the fit is
      refused.

    Small-sample factors: the second-stage part carries statsmodels' own
    (``df_resid`` in the nonrobust scale, ``n/(n-d)`` for HC1, leverage for
    HC2/HC3, ``G/(G-1) (n-1)/(n-d)`` for CRV1). The first-stage part is
    multiplied by ``G_pre/(G_pre-1)`` (``G_pre`` pre-training clusters, or
    ``m`` rows), and the overlap term by the square root of the product of
    both samples' factors, unless the second stage is uncorrected (``"HC0"``,
    or ``use_correction=False``): then no factor anywhere, which is the
    stacked M-estimation sandwich.
"""


@dataclass(frozen=True)
class CovarianceSpec:
    """A validated ``cov_type`` / ``cov_kwds`` pair.

    statsmodels' names (``"HC1"``, ``"cluster"``, ...) are normalised to
    ``cov_type="two-stage"`` with that ``second_stage``.

    Examples
    --------
    >>> CovarianceSpec.parse("two-stage", {"second_stage": "HC1"}).statsmodels_cov_type
    'HC1'
    >>> spec = CovarianceSpec.parse("HAC", {"maxlags": 4})
    >>> spec.cov_type, spec.label, spec.statsmodels_cov_kwds(None)
    ('two-stage', 'two-stage HAC', {'maxlags': 4, 'kernel': 'bartlett', 'use_correction': False})
    """

    cov_type: str
    second_stage: str = "nonrobust"
    groups: object = None
    pretrain_groups: object = None
    reps: int = 999
    seed: object = None
    alpha: float = 0.05
    spread: str = "sd"
    method: str = "exact"
    n_jobs: int = 1
    progress: bool = True
    max_degenerate: float = DEFAULT_MAX_DEGENERATE
    maxlags: int | None = None
    kernel: str = "bartlett"
    use_correction: bool | None = None

    @classmethod
    def parse(cls, cov_type, cov_kwds, *,
              unsupported: dict[str, str] | None = None) -> "CovarianceSpec":
        """Validate ``cov_type`` and ``cov_kwds``.

        ``unsupported`` maps second-stage estimators a model does not offer with a
        first stage to the reason (``cov_type="naive"`` still reaches statsmodels).
        """
        if cov_type not in COV_TYPES:
            raise ValueError(
                f"cov_type must be one of {COV_TYPES}; got {cov_type!r}. 'two-stage' adds the "
                "first-stage uncertainty to the second-stage covariance (statsmodels' names "
                "such as 'HC1' or 'cluster' select that second-stage estimator); 'naive' "
                "reproduces plain statsmodels; 'bootstrap' resamples both samples and refits; "
                "'jackknife' deletes one unit at a time from both samples and refits."
            )
        cov_kwds = {} if cov_kwds is None else dict(cov_kwds)
        unknown = sorted(set(cov_kwds) - set(COV_KWDS[cov_type]))
        if unknown:
            raise ValueError(
                f"Unknown cov_kwds {unknown} for cov_type={cov_type!r}; allowed keys are "
                f"{list(COV_KWDS[cov_type])}."
            )
        if cov_type in ("bootstrap", "jackknife"):
            return cls._parse_resampling(cov_type, cov_kwds)
        if cov_type in SECOND_STAGE_TYPES:
            cov_kwds["second_stage"], cov_type = cov_type, "two-stage"
        second = cov_kwds.get("second_stage", "nonrobust")
        if second not in SECOND_STAGE_TYPES:
            raise ValueError(
                f"cov_kwds['second_stage'] must be one of {SECOND_STAGE_TYPES}; got {second!r}."
            )
        if cov_type != "naive" and second in (unsupported or {}):
            raise ValueError(f"second_stage={second!r} is not available with a first stage "
                             f"here: {unsupported[second]}")
        groups = cov_kwds.get("groups")
        if (second == "cluster") != (groups is not None):
            raise ValueError(
                "cov_kwds['groups'] (cluster labels of the labeled rows) goes with "
                "second_stage='cluster' and only with it: "
                + ("pass groups=..." if groups is None else "set second_stage='cluster'") + "."
            )
        misplaced = sorted(set(cov_kwds) & set(ESTIMATOR_KWDS) - set(SECOND_STAGE_KWDS[second]))
        if misplaced:
            owners = sorted({name for key in misplaced for name, keys in
                             SECOND_STAGE_KWDS.items() if key in keys})
            raise ValueError(f"cov_kwds {misplaced} do not apply to second_stage={second!r}; "
                             f"they belong to {owners}.")
        return cls(cov_type, second, groups, cov_kwds.get("pretrain_groups"),
                   **cls._estimator_options(second, cov_kwds))

    @staticmethod
    def _estimator_options(second: str, cov_kwds: dict) -> dict:
        """``maxlags``, ``kernel`` and ``use_correction`` (statsmodels' defaults)."""
        out = {}
        if second in ("cluster", "HAC"):
            correction = cov_kwds.get("use_correction", second == "cluster")
            if not isinstance(correction, (bool, np.bool_)):
                raise ValueError(f"cov_kwds['use_correction'] must be True or False; got "
                                 f"{correction!r}.")
            out["use_correction"] = bool(correction)
        if second == "HAC":
            maxlags = cov_kwds.get("maxlags")
            if (not isinstance(maxlags, (int, np.integer)) or isinstance(maxlags, bool)
                    or maxlags < 0):
                raise ValueError(
                    "cov_type='HAC' needs cov_kwds['maxlags'], the highest lag of the "
                    f"Newey-West kernel (an integer >= 0); got {maxlags!r}.")
            kernel = cov_kwds.get("kernel", "bartlett")
            if kernel not in HAC_KERNELS:
                raise ValueError(f"cov_kwds['kernel'] must be one of {HAC_KERNELS}; got "
                                 f"{kernel!r}.")
            out.update(maxlags=int(maxlags), kernel=kernel)
        return out

    @classmethod
    def _parse_resampling(cls, cov_type: str, cov_kwds: dict) -> "CovarianceSpec":
        """The options of ``"bootstrap"`` and ``"jackknife"``."""
        reps = cov_kwds.get("reps", 999)
        if not isinstance(reps, (int, np.integer)) or isinstance(reps, bool) or reps < 2:
            raise ValueError(f"cov_kwds['reps'] must be an integer >= 2; got {reps!r}.")
        alpha = cov_kwds.get("alpha", 0.05)
        if not 0 < alpha < 1:
            raise ValueError(f"cov_kwds['alpha'] must be in (0, 1); got {alpha!r}.")
        spread = cov_kwds.get("spread", "sd")
        if spread not in SPREADS:
            raise ValueError(f"cov_kwds['spread'] must be one of {SPREADS}; got {spread!r}.")
        method = cov_kwds.get("method", "exact")
        if method not in JACKKNIFE_METHODS:
            raise ValueError(f"cov_kwds['method'] must be one of {JACKKNIFE_METHODS}; got "
                             f"{method!r}.")
        progress = cov_kwds.get("progress", True)
        if not isinstance(progress, (bool, np.bool_)):
            raise ValueError(f"cov_kwds['progress'] must be True or False; got {progress!r}.")
        max_degenerate = cov_kwds.get("max_degenerate", DEFAULT_MAX_DEGENERATE)
        if (isinstance(max_degenerate, bool) or not isinstance(max_degenerate, (int, float))
                or not 0 <= max_degenerate <= 1):
            raise ValueError("cov_kwds['max_degenerate'] is the largest fraction of "
                             "degenerate replicates that are dropped, a number in [0, 1]; "
                             f"got {max_degenerate!r}.")
        return cls(cov_type, "nonrobust", cov_kwds.get("groups"),
                   cov_kwds.get("pretrain_groups"), int(reps), cov_kwds.get("seed"), alpha,
                   spread=spread, method=method,
                   n_jobs=check_n_jobs(cov_kwds.get("n_jobs", 1)), progress=bool(progress),
                   max_degenerate=float(max_degenerate))

    @property
    def statsmodels_cov_type(self) -> str:
        return self.second_stage

    def statsmodels_cov_kwds(self, groups) -> dict | None:
        """The ``cov_kwds`` statsmodels' ``fit`` gets for the second stage."""
        if self.second_stage == "cluster":
            return {"groups": groups, "use_correction": self.use_correction}
        if self.second_stage == "HAC":
            return {"maxlags": self.maxlags, "kernel": self.kernel,
                    "use_correction": self.use_correction}
        return None

    @property
    def label(self) -> str:
        """The summary's "Covariance Type:" (18 characters at most)."""
        if self.cov_type == "two-stage" and self.second_stage != "nonrobust":
            return f"two-stage {self.second_stage}"
        if self.cov_type == "jackknife" and self.method == "one-step":
            return "jackknife one-step"
        return self.cov_type

    @property
    def small_sample(self) -> bool:
        """Whether the first-stage and overlap parts carry small-sample factors.

        They do exactly when the second-stage estimator does: not for ``"HC0"``,
        GEE's ``"robust"`` sandwich or QuantReg's ``"robust"``, ``"iid"`` and
        ``"powell"`` (none carries one), and for ``"cluster"`` / ``"HAC"`` as
        ``use_correction`` says.
        """
        if self.second_stage in ("HC0", "robust", "iid", "powell"):
            return False
        if self.second_stage in ("cluster", "HAC"):
            return bool(self.use_correction)
        return True

    def with_second_stage(self, second_stage: str) -> "CovarianceSpec":
        """This specification with another (keyword-free) second-stage estimator."""
        return replace(self, second_stage=second_stage, groups=None, maxlags=None,
                       kernel="bartlett", use_correction=None)


def labeled_influence_weights(spec: CovarianceSpec, *, nobs: float, df_resid: float,
                              k_params: int, groups=None, leverage=None):
    r"""statsmodels' small-sample weight ``c_j`` of each labeled row's influence.

    The second-stage estimator is ``sum_units (sqrt(c_j) a_j)(sqrt(c_j) a_j)'`` in
    statsmodels (for the robust estimators), with

    * HC1: ``c = n / df_resid``; HC2: ``c_j = 1 / (1 - h_j)``; HC3:
      ``c_j = 1 / (1 - h_j)^2`` (``h_j`` the leverage of row j);
    * cluster with ``use_correction``: ``c = G / (G - 1) (n - 1) / (n - d)``
      (CRV1, ``G`` labeled clusters); HAC with ``use_correction``: ``n / (n - d)``;
    * nonrobust (its correction is the ``df_resid`` of the scale, not a weight of
      the influences), HC0 and uncorrected cluster/HAC: ``c = 1``.

    ``nobs`` counts rows, as statsmodels' sandwiches do (also with frequency weights).
    The overlap term uses the labeled influences weighted the same way, so that the
    total stays a sum over units of (weighted influence)(weighted influence)', a
    positive semi-definite matrix, and the HC2/HC3 leverage adjustment applies to each
    labeled unit's whole influence; the unweighted influences there would combine two
    different estimates of the same unit's contribution.

    Examples
    --------
    >>> spec = CovarianceSpec.parse("HC1", None)
    >>> labeled_influence_weights(spec, nobs=100, df_resid=96, k_params=4)
    1.0416666666666667
    """
    second = spec.second_stage
    if second == "HC1":
        return nobs / df_resid
    if second in ("HC2", "HC3"):
        return (1.0 - leverage) ** (-1.0 if second == "HC2" else -2.0)
    if second == "cluster" and spec.use_correction:
        n_groups = len(pd.unique(np.asarray(groups)))
        return n_groups / (n_groups - 1.0) * (nobs - 1.0) / (nobs - k_params)
    if second == "HAC" and spec.use_correction:
        return nobs / (nobs - k_params)
    return 1.0


@dataclass(frozen=True)
class VarianceParts:
    """Fine-tuning, pre-training and overlap parts of a two-stage covariance."""

    fine_tuning: np.ndarray
    pretraining: np.ndarray
    cross: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.fine_tuning + self.pretraining + self.cross


@dataclass
class TwoStageCovariance:
    """Two-stage covariance engine for one fitted pipeline.

    Parameters
    ----------
    representation : Representation
        The fitted first stage (its pre-training rows are read in chunked passes, only
        when the cache of :meth:`first_stage_gram` needs new directions).
    jacobian : ndarray (d, q), or a callable returning it
        ``J = d beta_hat / d theta`` (a callable is called on first use: a naive fit
        never needs it).
    cov_second : ndarray (d, d)
        Second-stage covariance as statsmodels computes it.
    second_influence : ndarray (n, d), or None
        Per-row second-stage influence ``a*_j`` (contribution to ``beta_hat``). Only
        its sums over the units shared by the two samples are kept for the cross term
        (computed here), so it may be dropped afterwards (``remove_data``); None when
        the samples share no units (no ``pretrain_index``, no ``pretrain_groups``).
    pretrain_index : ndarray (n,) of int, optional
        Row of ``X_pre`` for each labeled row, or -1.
    groups, pretrain_groups : array_like, optional
        Cluster labels of labeled and pre-training rows, of one dtype
        (:func:`~ssl_inference.models._inputs.check_cluster_labels`). A label present in
        both arrays is ONE cluster with rows in both samples: its influences from the
        two samples are summed before the outer product (the cross term), with or
        without overlapping rows.
    chunk_rows : int
        Pre-training rows per streamed chunk.
    small_sample : bool
        Scale the pre-training part by :attr:`pretrain_factor` and the cross term
        by its square root (``second_influence`` then carries the labeled rows'
        weights ``sqrt(c_j)``, see the module docstring).
    """

    representation: Representation
    jacobian: np.ndarray
    cov_second: np.ndarray
    second_influence: np.ndarray | None
    pretrain_index: np.ndarray | None = None
    groups: np.ndarray | None = None
    pretrain_groups: np.ndarray | None = None
    chunk_rows: int = 8192
    small_sample: bool = False
    _pre_codes: tuple | None = field(default=None, init=False, repr=False)
    _cross_units: tuple | None = field(default=None, init=False, repr=False)
    _basis: np.ndarray | None = field(default=None, init=False, repr=False)
    _gram: np.ndarray | None = field(default=None, init=False, repr=False)
    _cross_sums: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.pretrain_groups is not None:
            codes, uniques = pd.factorize(np.asarray(self.pretrain_groups))
            self._pre_codes = (codes, uniques)
        self._cross_units = self._shared_units()

    def _shared_units(self) -> tuple | None:
        """Units with rows in both samples: ``(A_u (u, d), position)``, or None.

        ``position`` is the unit's pre-training cluster (index into the cluster sums)
        with clusters, its row of ``X_pre`` for overlap by rows.
        """
        A = self.second_influence
        if self._pre_codes is not None:
            if self.groups is None:
                return None
            codes, uniques = pd.factorize(np.asarray(self.groups))
            sums = np.zeros((len(uniques), A.shape[1]))
            np.add.at(sums, codes, A)
            pos = pd.Index(self._pre_codes[1]).get_indexer(uniques)
            hit = pos >= 0
            return (sums[hit], pos[hit]) if hit.any() else None
        if self.pretrain_index is None or self.groups is not None:
            return None
        linked = np.flatnonzero(self.pretrain_index >= 0)
        return (A[linked], self.pretrain_index[linked]) if linked.size else None

    @property
    def shared_clusters(self) -> int:
        """Number of clusters with rows in both samples (0 without clusters)."""
        if self._cross_units is None or self._pre_codes is None:
            return 0
        return len(self._cross_units[1])

    @property
    def has_cross(self) -> bool:
        """Whether some unit (row or cluster) has rows in both samples."""
        return self._cross_units is not None

    @property
    def n_pretrain_units(self) -> int:
        """``G_pre``: pre-training clusters, or rows when they are not clustered."""
        if self._pre_codes is not None:
            return len(self._pre_codes[1])
        return int(self.representation.nobs_)

    @property
    def pretrain_factor(self) -> float:
        """``c_pre = G_pre / (G_pre - 1)`` with ``small_sample``, else 1."""
        if not self.small_sample:
            return 1.0
        units = self.n_pretrain_units
        if units < 2:
            raise ValueError("The pre-training rows form a single cluster: the first-stage "
                             "variance cannot be estimated from one cluster. Pass "
                             "pretrain_groups with at least two clusters (many more for a "
                             "reliable estimate).")
        return units / (units - 1.0)

    def parts(self, L_beta: np.ndarray | None = None, L_theta: np.ndarray | None = None,
              *, diag: bool = False) -> VarianceParts:
        """Covariance parts of ``f = L_beta beta + L_theta theta`` (identity: beta itself).

        The first-stage and cross parts come from the cache of :meth:`first_stage_gram`:
        they cost ``O(r t (q + t))`` and read no pre-training data unless ``K = L_beta J
        + L_theta`` leaves the cached span.

        Parameters
        ----------
        L_beta : ndarray (r, d), optional
        L_theta : ndarray (r, q), optional
        diag : bool
            Return only the variances (r,) instead of (r, r) matrices.
        """
        d = self.jacobian.shape[0]
        L_beta = np.eye(d) if L_beta is None else np.atleast_2d(L_beta)
        K = L_beta @ self.jacobian
        if L_theta is not None:
            K = K + L_theta
        if diag:
            fine = np.einsum("ij,jk,ik->i", L_beta, self.cov_second, L_beta)
        else:
            fine = L_beta @ self.cov_second @ L_beta.T
        coords = self._coordinates(K)
        gram, cross_sums = self._gram, self._cross_sums
        if diag:
            pre = np.einsum("ij,jk,ik->i", coords, gram, coords)
        else:
            pre = coords @ gram @ coords.T
        if cross_sums is None:
            cross = np.zeros_like(pre)
        else:
            half = L_beta @ cross_sums
            cross = 2 * np.einsum("ij,ij->i", half, coords) if diag else (
                half @ coords.T + coords @ half.T)
        factor = self.pretrain_factor
        return VarianceParts(fine, factor * pre, np.sqrt(factor) * cross)

    # ------------------------------------------------------------ first-stage cache
    #: ``K`` rows whose residual off the cached span is below this fraction of their
    #: norm are in the span (rounding of an in-span row is ~1e-16 sqrt(q)).
    SPAN_RTOL = 1e-12

    def first_stage_gram(self, basis: np.ndarray | None = None):
        r"""The cache of first-stage sums that every later functional is served from.

        With ``T`` (t, q) an orthonormal basis of the directions seen so far (the rows
        of ``J`` after the fit, extended by each functional ``K`` that left their
        span), one pass over the pre-training units computes

        * ``G_T = (1/m^2) sum_u (T S_u)(T S_u)'`` (t, t), ``S_u`` the unit's (or
          cluster's) summed influence: the first-stage covariance in those directions;
        * ``C_T = (1/m) sum_{u shared} A_u (T S_u)'`` (d, t) over the units with rows
          in both samples (overlap or shared clusters), ``A_u`` their summed
          second-stage influences: the cross term's sums, or None.

        Then for ``K = L_beta J + L_theta`` in ``span(T)``, with coordinates
        ``c = K T'``, the first-stage part is ``c G_T c'`` and the cross part
        ``L_beta C_T c' + c C_T' L_beta'``: no pass over ``X_pre``. Predictions of an
        affine-feature first stage (PCA, factor scores) span at most ``p + 1``
        directions besides ``J``, so after the first prediction no prediction, margin,
        test or risk summary reads the pre-training data again; a representation whose
        feature gradients span more directions extends the cache (at most to all ``q``
        directions, ``O(q^2)`` memory) as functionals need them.

        Parameters
        ----------
        basis : ndarray (t, q), optional
            Directions to cache, in addition to those cached (e.g. ``np.eye(q)`` for
            all of them: then nothing reads ``X_pre`` again).

        Returns
        -------
        T, G_T, C_T : ndarray
        """
        if basis is not None:
            self._coordinates(np.atleast_2d(np.asarray(basis, dtype=float)))
        elif self._basis is None:
            self._coordinates(self.jacobian)
        return self._basis, self._gram, self._cross_sums

    def _coordinates(self, K: np.ndarray) -> np.ndarray:
        """``K T'``, extending the cached span (one pass over ``X_pre``) when needed."""
        q = self.jacobian.shape[1]
        if self._basis is None:  # nothing cached yet: the empty span
            self._basis, self._gram = np.zeros((0, q)), np.zeros((0, 0))
            self._cross_sums = (None if self._cross_units is None
                                else np.zeros((self.jacobian.shape[0], 0)))
        coords = K @ self._basis.T
        residual = K - coords @ self._basis
        new = _span_extension(residual, np.linalg.norm(K, axis=1) * self.SPAN_RTOL,
                              self._basis)
        if new.shape[0]:
            self._stream(np.vstack([self._basis, new]))
            coords = K @ self._basis.T
        return coords

    def _stream(self, basis: np.ndarray) -> None:
        """One pass over the pre-training units: ``G_T`` and ``C_T`` for ``basis``."""
        rep = self.representation
        m = rep.nobs_
        shared = None
        if self._cross_units is not None:
            A_units, unit_pos = self._cross_units
            shared = (A_units, unit_pos)
        groups = None if self._pre_codes is None else self._pre_codes[0]
        gram, cross = rep.influence_gram(basis, groups=groups, shared=shared,
                                         chunk_rows=self.chunk_rows)
        self._basis, self._gram = basis, gram / m ** 2
        self._cross_sums = None if cross is None else cross / m


def _get_jacobian(self) -> np.ndarray:
    J = self.__dict__["_jacobian"]
    if callable(J):  # computed on first use (naive fits never need it)
        J = self.__dict__["_jacobian"] = np.asarray(J(), dtype=float)
    return J


def _set_jacobian(self, value) -> None:
    self.__dict__["_jacobian"] = value


#: ``J = d beta_hat / d theta`` (d, q); ``jacobian=`` may be a callable returning it.
TwoStageCovariance.jacobian = property(_get_jacobian, _set_jacobian,
                                       doc="J = d beta_hat / d theta (d, q).")


def _span_extension(residual: np.ndarray, tol: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning ``residual`` up to ``tol`` (per row), orthogonal to
    ``basis``: pivoted Gram-Schmidt, ``O(r q t_new)``, each new row orthogonalised twice
    against everything before it."""
    R = residual.copy()
    norms = np.linalg.norm(R, axis=1)
    new: list[np.ndarray] = []
    while R.shape[0] and np.any(norms > tol):
        i = int(np.argmax(norms / np.maximum(tol, np.finfo(float).tiny)))
        v = R[i] / norms[i]
        for prev in (basis, np.asarray(new).reshape(-1, R.shape[1])):
            for _ in range(2):
                v = v - (prev @ v) @ prev
        size = np.linalg.norm(v)
        if size <= 0.5:  # rounding left (the row is in the span after all)
            tol = tol.copy()
            tol[i] = np.inf
            continue
        v /= size
        new.append(v)
        R -= np.outer(R @ v, v)
        norms = np.linalg.norm(R, axis=1)
    return np.asarray(new).reshape(-1, residual.shape[1])
