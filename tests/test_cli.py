"""The command line behaves like a tool, and the demo's numbers are computed, not typed."""
from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest
import statsmodels.formula.api as sm_smf

import ssl_inference as ssi
from ssl_inference import cli, demo
from ssl_inference.datasets import load_anes_split

matplotlib.use("Agg")


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_help_explains_every_option_with_its_default(capsys):
    code, out, _ = _run(capsys, "demo", "--help")
    assert code == 0
    entries = re.split(r"\n  (?=-)", out[out.index("options:"):])[1:]
    helps = {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}
    for option, default in [("--pretrain-rows", "1000"), ("--labeled-rows", "1000"),
                            ("--components", "2"), ("--survey-pretrain-rows", "100"),
                            ("--seed", "0")]:
        assert helps[option].endswith(f"(default: {default})"), helps[option]
        assert len(helps[option].split()) > 6  # a sentence, not just the default
    assert "--plot DIR" in out
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "demo" in out


def test_version(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == f"ssl_inference {ssi.__version__}"


@pytest.mark.parametrize("argv, message", [
    (["demo", "--components", "6"], "argument --components: must be between 1 and 4; got 6"),
    (["demo", "--labeled-rows", "0"], "--labeled-rows: must be between 20 and 20180; got 0"),
    (["demo", "--seed", "x"], "--seed: must be an integer; got 'x'"),
    (["demo", "--pretrain-rows", "20000", "--labeled-rows", "1000"],
     "--pretrain-rows + --labeled-rows must be at most 20190"),
    (["demo", "--survey-pretrain-rows", "900"], "must be between 10 and 844; got 900"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "the following arguments are required: command"),
])
def test_invalid_options_end_with_one_line(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert "Traceback" not in err


def test_errors_from_the_analysis_are_one_line_too(capsys):
    code, _, err = _run(capsys, "demo", "--pretrain-rows", "10", "--labeled-rows", "20",
                        "--components", "4")
    assert code == 2 and "choose fewer components" in err
    assert len(err.strip().splitlines()) == 1


def test_demo_numbers_are_computed(capsys):
    assert cli.main(["demo", "--pretrain-rows", "300", "--labeled-rows", "400"]) == 0
    out = capsys.readouterr().out
    assert "NAIVE (plain statsmodels)" in out and "TWO-STAGE (ssl_inference)" in out
    assert "Covariance Type:        two-stage HC1" in out
    assert "Covariance Type:                  HC1" in out
    act1 = demo.rand_act(300, 400)
    res, risk = act1.results["two-stage"], act1.results["risk"]
    worst = (res.bse / res.bse_naive).idxmax()
    match = re.search(r"the SE of (\w+) is ([\d.]+)% larger", out)
    assert match.group(1) == worst
    assert float(match.group(2)) == pytest.approx(100 * (res.bse / res.bse_naive - 1)[worst],
                                                  abs=0.051)
    share = re.search(r"risk of the fitted predictor, ([\d.]+)% comes", " ".join(out.split()))
    assert float(share.group(1)) == pytest.approx(100 * risk.pretraining_share, abs=0.051)

    # act 2: the naive columns are plain statsmodels on the same learned features
    split = load_anes_split(100)
    with pytest.warns(ssi.IdentificationWarning, match="nearly tied"):
        rep = ssi.PCA(2).fit(split.pretrain)
    frame = split.labeled.join(rep.transform(split.labeled[split.feature_columns]))
    plain = sm_smf.logit("vote ~ age + income + logpopul + pc0 + pc1", frame).fit(disp=0)
    two = demo.survey_act(100).results["two-stage"]
    np.testing.assert_allclose(two.bse_naive, plain.bse, rtol=1e-8)
    ratio = re.search(r"two-stage SE of pc0 is ([\d.]+) times", " ".join(out.split()))
    assert float(ratio.group(1)) == pytest.approx(two.bse["pc0"] / plain.bse["pc0"], abs=0.051)
    assert "refused with NonInvariantHypothesisError" in out
    assert "nearly tie" in out  # the default split warns: the statement is conditional


def test_demo_saves_figures(tmp_path, capsys):
    assert cli.main(["demo", "--pretrain-rows", "300", "--labeled-rows", "400",
                     "--plot", str(tmp_path)]) == 0
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["act1_pretrain_size.png", "act1_standard_errors.png",
                     "act2_standard_errors.png"]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in saved)
    assert "saved" in capsys.readouterr().out


def test_demo_rejects_impossible_split():
    with pytest.raises(ValueError, match="n_pretrain \\+ n_labeled must be between"):
        demo.run(n_pretrain=20000, n_labeled=1000)
