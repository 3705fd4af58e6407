"""Monte Carlo coverage of naive and two-stage intervals: PCA first stage, likelihood second stages.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/coverage_likelihood.py [--reps 1000] [--seed 0]
        [--out benchmarks/results/coverage_likelihood.csv] [--jobs 1]

Writes a long-format CSV (one row per configuration x target) and a Markdown copy
next to it (same stem, ``.md``).

Design
------
The raw inputs, the first stage and the covariate are those of
``benchmarks/coverage_pca_ols.py`` (imported, not copied): ``x`` in R^6, ``k = 2``
principal components learned on ``m`` pre-training rows (sign gauge), a covariate ``z``
correlated with ``x`` only outside the learned subspace. With ``s = U'(x - mu)`` the
population scores and ``eta = 0.2 + 0.3 z + 0.1 s_0 + 0.15 s_1``, the labeled outcome
follows one of five second stages, each correctly specified in ``[1, z, phi(x;
theta*)]`` so that the target (the population likelihood maximiser at ``theta*``) is the
generating parameter vector:

* ``negativebinomial``: NB2, ``mu = exp(eta)``, ``Var = mu + 0.5 mu^2``;
* ``generalizedpoisson``: statsmodels' GP-1 (``p=1``), ``mu = exp(eta)``,
  ``Var = mu (1 + 0.3)^2``, drawn by inversion of its pmf;
* ``zeroinflatedpoisson``: a structural zero with probability
  ``expit(-1 + 0 s_0 + 0.3 s_1)`` (the learned features in the inflation design too,
  ``inflation_features=True``), else Poisson(``exp(eta)``);
* ``mnlogit``: three categories, ``eta_1 = 0.2 + 0.4 z + 0.15 s_0``,
  ``eta_2 = -0.3 + 0.2 z - 0.2 s_1`` against category 0;
* ``orderedmodel``: ordered logit, latent ``0.5 z + 0.15 s_0 - 0.2 s_1 + logistic``,
  thresholds 0 and 1.5 (statsmodels' parameters ``0/1 = 0``, ``1/2 = log 1.5``).

Targets: every coefficient (the intercept and pc coefficients move with the first
stage; ``z`` barely), the extra parameters (``alpha``, thresholds), and one prediction
at the fixed raw point ``(z0, x0)`` of ``coverage_pca_ols.py``: the mean (count models,
``which="mean"``), the probability of category 2 (``mnlogit``, ``orderedmodel``).
Everything is invariant under the sign group or a sign-gauge target.

Configurations: ``n = 2000`` labeled rows, ``m in {2000, 200}`` pre-training rows
(n/m = 1 and 10), Gaussian ``x``.

Intervals (95%, normal reference): naive = estimate -+ z * ``bse_naive`` (prediction:
the delta method with ``cov_params_naive`` and the new features held fixed); two-stage =
``res.conf_int()`` and ``res.get_prediction(...).conf_int()`` (delta method; the count
means' default interval is the linear predictor's mapped through ``exp``). Second stage
``nonrobust``. Fits: Newton (count models, MNLogit), BFGS (ordered model).

Monte Carlo SE of a coverage ``c`` over R reps: ``sqrt(c (1 - c) / R)``; at R = 1000 and
c = 0.95 it is 0.69 points.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per worker process (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools import sm_exceptions
from scipy.special import expit, gammaln

import ssl_inference as ssi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)
import coverage_pca_ols as ols_bench  # noqa: E402  (the shared x design)

K = ols_bench.K
LEVEL = ols_bench.LEVEL
#: the count models' linear predictor: intercept, z, s_0, s_1
ETA = np.array([0.2, 0.3, 0.1, 0.15])
NB_ALPHA = 0.5
GP_ALPHA = 0.3
INFLATION = np.array([-1.0, 0.0, 0.3])  # intercept, s_0, s_1
MN = np.array([[0.2, 0.4, 0.15, 0.0], [-0.3, 0.2, 0.0, -0.2]])
ORDERED = np.array([0.5, 0.15, -0.2])  # z, s_0, s_1
THRESHOLDS = np.array([0.0, 1.5])


def _count_design(z, s):
    return np.column_stack([np.ones_like(z), z, s])


def _draw_gp1(rng, mu, alpha):
    """GP-1 draws by inversion of statsmodels' pmf (``p=1``: ``Var = mu (1+alpha)^2``)."""
    y_max = int(np.ceil(mu.max() + 12 * np.sqrt(mu.max()) * (1 + alpha) + 20))
    y = np.arange(y_max + 1)[None, :]
    m = mu[:, None]
    logpmf = (np.log(m) + (y - 1) * np.log(m + alpha * y) - y * np.log1p(alpha)
              - gammaln(y + 1) - (m + alpha * y) / (1 + alpha))
    cdf = np.cumsum(np.exp(logpmf), axis=1)
    return (rng.random((len(mu), 1)) > cdf).sum(axis=1).astype(float)


@dataclass(frozen=True)
class SecondStage:
    """A second stage: its model, how to draw ``y``, its targets and its prediction."""

    name: str

    # ---- the model and its fit
    def model(self, y, z, x, rep):
        exog = sm.add_constant(z)
        kw = {"representation": rep, "features": x}
        if self.name == "negativebinomial":
            return ssi.NegativeBinomial(y, exog, **kw)
        if self.name == "generalizedpoisson":
            return ssi.GeneralizedPoisson(y, exog, **kw)
        if self.name == "zeroinflatedpoisson":
            return ssi.ZeroInflatedPoisson(y, exog, inflation_features=True, **kw)
        if self.name == "mnlogit":
            return ssi.MNLogit(y, exog, **kw)
        return ssi.OrderedModel(y, z[:, None], distr="logit", **kw)

    @property
    def fit_kwargs(self) -> dict:
        if self.name == "orderedmodel":
            return {"method": "bfgs", "maxiter": 1000, "disp": 0}
        return {"method": "newton", "maxiter": 100, "disp": 0}

    # ---- data
    def draw(self, rng, z, s):
        eta = _count_design(z, s) @ ETA
        if self.name == "negativebinomial":
            r = 1 / NB_ALPHA
            return rng.negative_binomial(r, r / (r + np.exp(eta))).astype(float)
        if self.name == "generalizedpoisson":
            return _draw_gp1(rng, np.exp(eta), GP_ALPHA)
        if self.name == "zeroinflatedpoisson":
            zero = rng.random(len(z)) < expit(INFLATION[0] + s @ INFLATION[1:])
            return np.where(zero, 0.0, rng.poisson(np.exp(eta)))
        if self.name == "mnlogit":
            return self._categories(rng, self._mn_probabilities(z, s))
        latent = np.column_stack([z, s]) @ ORDERED + rng.logistic(size=len(z))
        return np.digitize(latent, THRESHOLDS).astype(float)

    @staticmethod
    def _categories(rng, prob):
        return (rng.random((len(prob), 1)) > prob.cumsum(axis=1)).sum(axis=1).astype(float)

    @staticmethod
    def _mn_probabilities(z, s):
        W = _count_design(z, s)
        e = np.exp(np.column_stack([np.zeros(len(z)), W @ MN.T]))
        return e / e.sum(axis=1, keepdims=True)

    # ---- targets
    @property
    def targets(self) -> tuple:
        count = ("const", "z", "pc0", "pc1")
        return {"negativebinomial": count + ("alpha", "pred_mean"),
                "generalizedpoisson": count + ("alpha", "pred_mean"),
                "zeroinflatedpoisson": ("inflate_const", "inflate_pc0", "inflate_pc1")
                + count + ("pred_mean",),
                "mnlogit": tuple(f"y{e}_{c}" for e in (1, 2) for c in count)
                + ("pred_prob2",),
                "orderedmodel": ("z", "pc0", "pc1", "0/1", "1/2", "pred_prob2")}[self.name]

    def truth(self, design: ols_bench.Design) -> np.ndarray:
        s0 = design.U.T @ (design.x0 - ols_bench.MU)
        z0 = ols_bench.Z0
        w0 = np.concatenate([[1.0, z0], s0])
        if self.name in ("negativebinomial", "generalizedpoisson"):
            alpha = NB_ALPHA if self.name == "negativebinomial" else GP_ALPHA
            return np.concatenate([ETA, [alpha, np.exp(w0 @ ETA)]])
        if self.name == "zeroinflatedpoisson":
            pi0 = expit(INFLATION[0] + s0 @ INFLATION[1:])
            return np.concatenate([INFLATION, ETA, [(1 - pi0) * np.exp(w0 @ ETA)]])
        if self.name == "mnlogit":
            return np.concatenate([MN.ravel(),
                                   self._mn_probabilities(np.array([z0]), s0[None])[0, 2:]])
        top = 1 - expit(THRESHOLDS[1] - np.concatenate([[z0], s0]) @ ORDERED)
        return np.concatenate([ORDERED, [THRESHOLDS[0], np.log(np.diff(THRESHOLDS)[0]),
                                         top]])

    def prediction(self, res, z0, x0):
        """``(estimate, two-stage SE, two-stage interval)`` of the prediction target."""
        if self.name in ("mnlogit", "orderedmodel"):
            exog0 = np.array([[1.0, z0]]) if self.name == "mnlogit" else np.array([[z0]])
            pred = res.get_prediction(exog0, features=x0[None])
            return pred.predicted[0, 2], pred.se[0, 2], pred.conf_int()[0, 2]
        pred = res.get_prediction(np.array([[1.0, z0]]), features=x0[None], which="mean")
        return pred.predicted[0], pred.se[0], pred.conf_int()[0]

    def naive_prediction_se(self, res, z0, x0) -> float:
        """Delta method with statsmodels' covariance and the new features held fixed."""
        phi0 = res.model.representation.transform(x0[None])
        exog0 = np.column_stack([[[1.0, z0]] if self.name != "orderedmodel" else [[z0]],
                                 phi0])
        model = res.model
        params = np.asarray(res.params, dtype=float).ravel(order="F")

        def f(p):
            p_model = p.reshape(np.shape(res.params), order="F")
            if self.name in ("mnlogit", "orderedmodel"):
                return np.asarray(model.predict(p_model, exog0))[0, 2]
            kw = {"exog_infl": np.column_stack([[[1.0]], phi0])} \
                if self.name == "zeroinflatedpoisson" else {}
            return np.asarray(model.predict(p_model, exog0, **kw))[0]

        h = 1e-6
        grad = np.array([(f(params + h * e) - f(params - h * e)) / (2 * h)
                         for e in np.eye(params.size)])
        return float(np.sqrt(grad @ np.asarray(res.cov_params_naive()) @ grad))


SECOND_STAGES = ("negativebinomial", "generalizedpoisson", "zeroinflatedpoisson",
                 "mnlogit", "orderedmodel")


def one_replication(design, stage: SecondStage, rng, n: int, m: int) -> dict:
    """One data set: estimates, naive and two-stage SEs and coverage of every target."""
    X_pre = design.draw_x(rng, m, "gaussian")
    _, z, x = design.draw_labeled(rng, n, "gaussian")  # its y (linear) is not used
    y = stage.draw(rng, z, (x - ols_bench.MU) @ design.U)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
        res = stage.model(y, z, x, rep).fit(**stage.fit_kwargs)
    warned = any(issubclass(w.category, ssi.IdentificationWarning) for w in caught)
    unconverged = any(issubclass(w.category, (ssi.ConvergenceWarning,
                                              sm_exceptions.ConvergenceWarning))
                      for w in caught)
    z0, x0 = ols_bench.Z0, design.x0
    pred, pred_se, pred_ci = stage.prediction(res, z0, x0)
    est = np.append(np.asarray(res.params).ravel(order="F"), pred)
    se_two = np.append(np.asarray(res.bse).ravel(order="F"), pred_se)
    # (MNLogit's intervals are (equations, columns, 2): the flat order of its params)
    ci_two = np.vstack([np.asarray(res.conf_int()).reshape(-1, 2), pred_ci])
    se_naive = np.append(np.asarray(res.bse_naive).ravel(order="F"),
                         stage.naive_prediction_se(res, z0, x0))
    q = stats.norm.ppf(0.5 + LEVEL / 2)
    target = stage.truth(design)
    return {"est": est, "se_two_stage": se_two, "se_naive": se_naive,
            "cover_two_stage": (ci_two[:, 0] <= target) & (target <= ci_two[:, 1]),
            "cover_naive": np.abs(est - target) <= q * se_naive, "warned": warned,
            "unconverged": unconverged}


def simulate(model: str, n: int, m: int, reps: int, seed,
             design: ols_bench.Design | None = None) -> pd.DataFrame:
    """Coverage table of one (second stage, n, m) configuration.

    Parameters
    ----------
    model : one of ``SECOND_STAGES``
    n, m : int
        Labeled and pre-training sample sizes.
    reps : int
    seed : int or sequence of int
        ``numpy.random.SeedSequence`` entropy; every replication gets its own child.

    Returns
    -------
    DataFrame with one row per target: naive and two-stage coverage with MC SEs, bias,
    empirical SD of the estimate, the mean SEs and mean SE / MC SD with its MC SE.
    """
    design = ols_bench.Design() if design is None else design
    stage = SecondStage(model)
    target = stage.truth(design)
    a = _coverage.stack(_coverage.replicate(
        lambda rng: one_replication(design, stage, rng, n, m), reps, seed))
    rows = []
    for i, name in enumerate(stage.targets):
        rows.append({
            "model": model, "n": n, "m": m, "n_over_m": n / m, "target": name,
            "truth": target[i], "reps": reps,
            **_coverage.coverage_columns(a["cover_naive"][:, i], a["cover_two_stage"][:, i],
                                         reps),
            "bias": a["est"][:, i].mean() - target[i], "sd_est": a["est"][:, i].std(ddof=1),
            "mean_se_naive": a["se_naive"][:, i].mean(),
            "mean_se_two_stage": a["se_two_stage"][:, i].mean(),
            **_coverage.se_sd_columns(a["est"][:, i], a["se_naive"][:, i],
                                      a["se_two_stage"][:, i]),
            "identification_warning_rate": a["warned"].mean(),
            "convergence_warning_rate": a["unconverged"].mean(),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- grid / CLI
N_LABELED = 2000


def grid():
    """(second stage, n, m) of the benchmark, in a stable order."""
    return [(model, N_LABELED, N_LABELED // ratio) for model in SECOND_STAGES
            for ratio in (1, 10)]


def run_config(cfg, reps, seed):
    """Coverage table of one grid entry ``(second stage, n, m)``."""
    model, n, m = cfg
    return simulate(model, n, m, reps, seed=seed)


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Coverage of 95% intervals: PCA (k=2, p=6) first stage, generic likelihood "
        "second stages",
        "",
        _coverage.generated_by("coverage_likelihood.py", reps, seed, seconds) + " "
        "Coverage in %, Monte Carlo SE in parentheses. `se ratio` = mean two-stage SE / "
        "mean naive SE; `se/sd` = mean two-stage SE / Monte Carlo SD of the estimate "
        "(1 if the two-stage SE is right), its Monte Carlo SE in parentheses. Two-stage "
        "target band: 93.5-96.5%. `pred_mean`: the mean at a fixed raw point; "
        "`pred_prob2`: the probability of the top category there.",
        "",
        "| model | n | m | n/m | target | naive | two-stage | in band | se ratio | se/sd |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        f"| {r.model} | {r.n} | {r.m} | {r.n_over_m:g} | {r.target} | "
        f"{_coverage.coverage_cells(r)} | "
        f"{'yes' if _coverage.in_band(r.coverage_two_stage) else '**NO**'} | "
        f"{r.mean_se_two_stage / r.mean_se_naive:.2f} | "
        f"{r.se_sd_two_stage:.3f} ({r.mcse_se_sd_two_stage:.3f}) |"
        for r in df.itertuples()]
    return _coverage.markdown_table(header, rows)


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=grid(),
                          run_config=run_config, to_markdown=to_markdown)


if __name__ == "__main__":
    main()
