"""``python -m ssl_inference demo``: two two-stage analyses of real data, in two acts.

1. RAND Health Insurance Experiment (:func:`rand_act`): a health index learned by PCA
   on people without outcome data, then OLS of outpatient visits on the insurance plan
   and the index. With ``m = n = 1000`` the first stage hardly matters, and the risk
   asymptotics say how much more unlabeled data would help (nothing, here).
2. 1996 American National Election Survey (:func:`survey_act`): two attitude components
   learned on 100 respondents, then a Logit of the vote. Here the first stage changes
   the conclusion: the components nearly tie, a "highly significant" single component
   is not identified, and the invariant test of the pair replaces it.

Every number printed is computed from the data.
"""
from __future__ import annotations

import textwrap
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .datasets import load_anes_split, load_randhie_split
from .exceptions import IdentificationWarning, NonInvariantHypothesisError
from .formula import api as smf
from .representations import PCA

FORMULA = "y ~ lncoins + idp + lpi + fmde"
SURVEY_FORMULA = "vote ~ age + income + logpopul"
RULE = "=" * 78


@dataclass
class Act:
    """One analysis of the demo: its report and the fitted results (for figures)."""

    text: str
    results: dict = field(default_factory=dict)


def run(n_pretrain: int = 1000, n_labeled: int = 1000, seed: int = 0,
        n_components: int = 2, survey_pretrain: int = 100) -> str:
    """Run both acts and return the report as text.

    Parameters
    ----------
    n_pretrain, n_labeled, n_components : int
        Act 1: people without outcome data (PCA rows), labeled people, components.
    seed : int
        Random split of both data sets.
    survey_pretrain : int
        Act 2: survey respondents whose vote is set aside for pre-training.
    """
    return "\n".join([rand_act(n_pretrain, n_labeled, seed, n_components).text, "",
                      survey_act(survey_pretrain, seed).text])


def rand_act(n_pretrain: int = 1000, n_labeled: int = 1000, seed: int = 0,
             n_components: int = 2) -> Act:
    """Act 1: RAND HIE, PCA health index -> OLS; naive vs two-stage, and the risk law."""
    split = load_randhie_split(n_pretrain, n_labeled, seed)
    rep = PCA(n_components).fit(split.pretrain)
    model = smf.ols(FORMULA, split.labeled, representation=rep, features=split.feature_columns)
    naive = model.fit(cov_type="naive", cov_kwds={"second_stage": "HC1"})
    two = model.fit(cov_type="HC1")  # two-stage, with statsmodels' HC1 second stage
    ratio = two.bse / naive.bse
    shares = two.variance_decomposition()["pretraining_share"]
    worst = ratio.idxmax()
    plan = ["lncoins", "idp", "lpi", "fmde"]
    risk = model.fit().risk_asymptotics()
    lines = [
        RULE, "ACT 1. RAND Health Insurance Experiment (statsmodels.datasets.randhie)", RULE,
        _wrap(f"First stage: PCA(k={n_components}) of {split.feature_columns} on "
              f"{n_pretrain} people without outcome data."),
        _wrap(f"Second stage: OLS of log(1 + outpatient visits) on the insurance plan and "
              f"the learned health index, {n_labeled} other people."),
        "", "=" * 30 + " NAIVE (plain statsmodels) " + "=" * 21, str(naive.summary()),
        "", "=" * 30 + " TWO-STAGE (ssl_inference) " + "=" * 21, str(two.summary()), "",
        "Variance decomposition of the two-stage covariance (variances and shares):",
        two.variance_decomposition().to_string(float_format="%.3g"), "",
        _wrap(f"What changed: the SE of {worst} is {100 * (ratio[worst] - 1):.1f}% larger "
              f"than the naive one ({100 * shares[worst]:.1f}% of its variance comes from "
              f"pre-training); the insurance-plan SEs move by "
              f"{_at_most(np.max(np.abs(ratio[plan] - 1)))}."),
        "", _wrap(_risk_paragraph(risk)),
    ]
    return Act("\n".join(lines), {"two-stage": two, "risk": risk})


def _risk_paragraph(risk) -> str:
    share = risk.pretraining_share
    m10 = risk.pretrain_size_for(0.10)
    if share < 0.10:
        more = (f"it is already under 10%, so more unlabeled data would not noticeably "
                f"lower the risk (10% is reached at m = {m10:,.0f})")
    else:
        more = f"it falls under 10% at m = {np.ceil(m10):,.0f} pre-training rows"
    text = (f"How much unlabeled data is enough (res.risk_asymptotics()): of the expected "
            f"excess test risk of the fitted predictor, {100 * share:.1f}% comes from "
            f"estimating the index on m = {risk.nobs_pretrain:,} people and the rest from "
            f"fitting on n = {risk.nobs:,}; {more}.")
    if risk.d_base is not None:
        text += (f" By the limit theory, learning the index beats regressing on the raw "
                 f"measures directly ({risk.d_base} instead of {risk.d_eff} parameters) as "
                 f"soon as m / n exceeds alpha_0 = {risk.crossover_alpha():.2g}.")
    return text


def survey_act(n_pretrain: int = 100, seed: int = 0) -> Act:
    """Act 2: ANES 1996, PCA attitude components -> Logit of the vote.

    The sign-mode fit shows the naive and two-stage answers side by side; the
    rotation-mode fit shows which test is refused and the invariant one to use instead.
    """
    split = load_anes_split(n_pretrain, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentificationWarning)  # reported below instead
        rep = PCA(2, symmetry="sign").fit(split.pretrain)
        subspace = PCA(2, symmetry="rotation").fit(split.pretrain)
    model = smf.logit(SURVEY_FORMULA, split.labeled, representation=rep,
                      features=split.feature_columns)
    naive = model.fit(cov_type="naive", disp=0)
    two = model.fit(disp=0)
    rot = smf.logit(SURVEY_FORMULA, split.labeled, representation=subspace,
                    features=split.feature_columns).fit(disp=0)
    table = pd.DataFrame({"coef": two.params, "naive SE": naive.bse,
                          "naive p": naive.pvalues, "two-stage SE": two.bse,
                          "two-stage p": two.pvalues, "SE ratio": two.bse / naive.bse})
    lam = rep.explained_variance_
    tied = bool(rep.fit_warnings_)
    covariates = ["age", "income", "logpopul"]
    grew = (two.bse / naive.bse)[covariates]
    flipped = [c for c in table.index if (naive.pvalues[c] < 0.05) != (two.pvalues[c] < 0.05)]
    try:
        rot.t_test("pc0 = 0")
        refused = "accepted (unexpectedly)"
    except NonInvariantHypothesisError:
        refused = "refused with NonInvariantHypothesisError"
    joint = rot.wald_test("pc0 = pc1 = 0", scalar=True)
    lines = [
        RULE, "ACT 2. 1996 American National Election Survey (statsmodels.datasets.anes96)",
        RULE,
        _wrap(f"First stage: PCA(k=2) of six attitude and media items "
              f"{split.feature_columns} on {n_pretrain} respondents whose vote is set aside."),
        _wrap(f"Second stage: Logit of the vote (1 = Dole) on age, income, log population and "
              f"the two components, {len(split.labeled)} other respondents."), "",
        table.to_string(float_format=lambda v: f"{v:.4g}"), "",
        _wrap("How much the SEs grew and why: the components are estimated from only "
              f"{n_pretrain} respondents, and their first two eigenvalues "
              + (f"nearly tie ({lam[0]:.2f} and {lam[1]:.2f}; the first stage warns that "
                 "single components are not identified), so the direction called pc0 is "
                 "barely determined. " if tied else
                 f"are {lam[0]:.2f} and {lam[1]:.2f}. ")
              + f"The two-stage SE of pc0 is {table.loc['pc0', 'SE ratio']:.1f} times the "
              f"naive one; the covariate SEs grow by {_percent_range(grew)}. "
              + (f"At the 5% level the conclusion changes for {', '.join(flipped)} ("
                 + "; ".join(f"{c}: naive p = {naive.pvalues[c]:.2g}, two-stage p = "
                             f"{two.pvalues[c]:.2g}" for c in flipped) + ")."
                 if flipped else "No 5%-level conclusion changes with this split.")),
        "",
        _wrap(("What to test instead: only the plane of the two components is well "
               "determined. " if tied else "What to test when only the plane of the "
               "components is of interest: ")
              + "Fitted with PCA(2, symmetry='rotation'), the single-component "
              f"test res.t_test('pc0 = 0') is {refused}, because an equally good first "
              "stage can rotate pc0 into pc1. The invariant test of the plane, "
              f"res.wald_test('pc0 = pc1 = 0'), gives chi2 = {float(joint.statistic):.1f} on "
              f"2 df, p = {float(joint.pvalue):.2g}: attitudes predict the vote. Covariate "
              "tests do not depend on the mode (income: p = "
              f"{two.pvalues['income']:.4f} with sign flips, "
              f"{float(rot.t_test('income = 0').pvalue):.4f} with rotations)."),
    ]
    return Act("\n".join(lines), {"two-stage": two})


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=78)


def _percent_range(ratios: pd.Series) -> str:
    lo, hi = 100 * (ratios.min() - 1), 100 * (ratios.max() - 1)
    return f"{lo:.0f}%" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f}%"


def _at_most(share: float) -> str:
    """``0.0003 -> 'at most 0.03%'``; below 0.005%: ``'less than 0.01%'``."""
    return "less than 0.01%" if share < 5e-5 else f"at most {100 * share:.2f}%"


def save_figures(directory, acts: list[Act]) -> list:
    """Save the SE comparison of each act and the risk curve of act 1 as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, act in enumerate(acts, start=1):
        ax = act.results["two-stage"].plot_standard_errors()
        paths.append(out / f"act{i}_standard_errors.png")
        ax.figure.savefig(paths[-1], dpi=120)
        plt.close(ax.figure)
        if "risk" in act.results:
            ax = act.results["risk"].plot_pretrain_size()
            paths.append(out / f"act{i}_pretrain_size.png")
            ax.figure.savefig(paths[-1], dpi=120)
            plt.close(ax.figure)
    return paths
