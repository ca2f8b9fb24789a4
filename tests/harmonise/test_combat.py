"""Reference-site ComBat against neuroCombat (Fortin et al.'s maintained implementation) and its invariants."""

import numpy as np
import pandas as pd
import pytest
from neuroCombat import neuroCombat

from gistrisk.errors import InputError
from gistrisk.harmonise.combat import MIN_SITE_CASES, apply_site, estimate_site, fit_reference


def _two_sites(seed=0, n_ref=80, n_new=40, p=30, covariate=False):
    """Features with a site shift and scale (per feature, drawn) and optionally a size effect."""
    rng = np.random.default_rng(seed)
    size_ref, size_new = rng.uniform(2, 12, n_ref), rng.uniform(4, 14, n_new)
    loc = rng.normal(0, 3, p)
    spread = rng.uniform(0.5, 2.0, p)
    slope = rng.normal(0, 0.5, p) if covariate else np.zeros(p)
    ref = loc + spread * rng.normal(size=(n_ref, p)) + np.outer(size_ref, slope)
    shift, scale = rng.normal(1.0, 0.8, p), rng.uniform(1.5, 3.0, p)
    new = loc + shift + scale * spread * rng.normal(size=(n_new, p)) + np.outer(size_new, slope)
    cols = [f"f{j}" for j in range(p)]
    R = pd.DataFrame(ref, columns=cols, index=[f"R{i}" for i in range(n_ref)])
    N = pd.DataFrame(new, columns=cols, index=[f"N{i}" for i in range(n_new)])
    cov_r = pd.DataFrame({"size": size_ref}, index=R.index)
    cov_n = pd.DataFrame({"size": size_new}, index=N.index)
    return R, N, cov_r, cov_n, slope


@pytest.fixture
def numpy_for_neurocombat(monkeypatch):
    """neuroCombat 0.2.12 (its latest release) still uses ``np.int``, removed in NumPy 2."""
    monkeypatch.setattr(np, "int", int, raising=False)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # neuroCombat: the reference's gamma is 0
def test_equals_neurocombat_reference_batch_without_covariates(numpy_for_neurocombat):
    R, N, *_ = _two_sites()
    ref = fit_reference(R)
    ours = apply_site(ref, estimate_site(ref, N, site="B", prior_trim=0), N)
    data = pd.concat([R, N]).T.to_numpy()
    covars = pd.DataFrame({"batch": ["A"] * len(R) + ["B"] * len(N)})
    theirs = neuroCombat(dat=data, covars=covars, batch_col="batch", ref_batch="A")["data"].T
    np.testing.assert_allclose(theirs[:len(R)], R.to_numpy())  # both leave the reference as it is
    np.testing.assert_allclose(ours.to_numpy(), theirs[len(R):], rtol=1e-9, atol=1e-9)


def test_without_empirical_bayes_equals_neurocombat_location_scale(numpy_for_neurocombat):
    R, N, *_ = _two_sites(seed=3)
    ref = fit_reference(R)
    ours = apply_site(ref, estimate_site(ref, N, site="B", empirical_bayes=False), N)
    data = pd.concat([R, N]).T.to_numpy()
    covars = pd.DataFrame({"batch": ["A"] * len(R) + ["B"] * len(N)})
    theirs = neuroCombat(dat=data, covars=covars, batch_col="batch", ref_batch="A", eb=False)["data"].T
    np.testing.assert_allclose(ours.to_numpy(), theirs[len(R):], rtol=1e-9, atol=1e-9)


def test_the_new_site_takes_the_reference_location_and_spread():
    R, N, *_ = _two_sites(seed=1, n_new=200)
    ref = fit_reference(R)
    H = apply_site(ref, estimate_site(ref, N, site="B"), N)
    before = np.abs(N.mean() - R.mean()) / R.std()
    after = np.abs(H.mean() - R.mean()) / R.std()
    assert after.median() < 0.15 < before.median()
    ratio_before, ratio_after = N.std() / R.std(), H.std() / R.std()
    assert np.median(np.abs(np.log(ratio_after))) < 0.15 < np.median(np.abs(np.log(ratio_before)))


def test_the_reference_is_unchanged_and_a_reference_like_site_barely_moves():
    R, _, *_ = _two_sites(seed=2, n_ref=200)
    ref = fit_reference(R)
    np.testing.assert_allclose(ref.mean, R.mean().to_numpy())
    np.testing.assert_allclose(ref.scale, R.std(ddof=0).to_numpy())
    same = R.iloc[:60] + 0.0
    H = apply_site(ref, estimate_site(ref, same, site="same"), same)
    assert np.max(np.abs(H - same).to_numpy() / R.std().to_numpy()) < 0.5


def test_covariate_effect_is_kept():
    R, N, cov_r, cov_n, slope = _two_sites(seed=4, n_ref=150, n_new=120, covariate=True)
    ref = fit_reference(R, cov_r)
    reference_slope = np.polyfit(cov_r["size"], R.to_numpy(), 1)[0]
    np.testing.assert_allclose(ref.beta[0], reference_slope, rtol=1e-9)
    H = apply_site(ref, estimate_site(ref, N, cov_n, site="B"), N, cov_n)
    design = np.column_stack([np.ones(len(H)), cov_n["size"]])
    fitted_slope = np.linalg.lstsq(design, H.to_numpy(), rcond=None)[0][1]
    np.testing.assert_allclose(fitted_slope, slope, atol=0.25)
    # without the covariate the site's larger tumours would be read as site shift and removed
    plain = fit_reference(R)
    H0 = apply_site(plain, estimate_site(plain, N, site="B"), N)
    wrong = np.linalg.lstsq(design, H0.to_numpy(), rcond=None)[0][1]
    assert np.abs(wrong - slope).mean() > np.abs(fitted_slope - slope).mean()


def test_one_patient_at_a_time_gives_the_batch_values():
    R, N, *_ = _two_sites(seed=5)
    ref = fit_reference(R)
    adj = estimate_site(ref, N, site="B")
    batch = apply_site(ref, adj, N)
    for pid in N.index[:5]:
        one = apply_site(ref, adj, N.loc[[pid]])
        np.testing.assert_allclose(one.to_numpy(), batch.loc[[pid]].to_numpy(), rtol=0, atol=1e-12)


def test_too_few_cases_is_refused_naming_the_minimum():
    R, N, *_ = _two_sites(seed=6)
    ref = fit_reference(R)
    with pytest.raises(InputError, match=f"at least {MIN_SITE_CASES} cases"):
        estimate_site(ref, N.iloc[:MIN_SITE_CASES - 1], site="B")
    estimate_site(ref, N.iloc[:MIN_SITE_CASES], site="B")


def test_constant_features_are_skipped_and_left_alone():
    R, N, *_ = _two_sites(seed=7, p=5)
    R["const"], N["const"] = 1.0, 3.0
    N["text"] = "x"
    ref = fit_reference(R)
    assert "const" not in ref.features and "no spread" in ref.skipped["const"]
    H = apply_site(ref, estimate_site(ref, N, site="B"), N)
    assert (H["const"] == 3.0).all() and (H["text"] == "x").all()


def test_missing_feature_or_covariate_is_named():
    R, N, cov_r, cov_n, _ = _two_sites(seed=8, covariate=True)
    ref = fit_reference(R, cov_r)
    with pytest.raises(InputError, match="covariate"):
        estimate_site(ref, N, None, site="B")
    bad = cov_n.copy()
    bad.iloc[3, 0] = np.nan
    with pytest.raises(InputError, match="patient N3"):
        estimate_site(ref, N, bad, site="B")
    with pytest.raises(InputError, match="'f0'"):
        estimate_site(ref, N.drop(columns="f0"), cov_n, site="B")


def test_a_feature_almost_constant_in_the_reference_does_not_collapse_the_others():
    """Radiomics has features nearly constant at the development site that vary at another; with priors from
    every feature their raw scale (here 1e8) makes every feature's shrunk scale huge (seen on the demo's
    external scanner: the radiomics score's SD fell from 5.5 to 0.02)."""
    R, N, *_ = _two_sites(seed=9, p=200)
    R["flat"] = 1.0 + 1e-4 * np.random.default_rng(0).normal(size=len(R))
    N["flat"] = 1.0 + np.random.default_rng(1).normal(size=len(N))
    ref = fit_reference(R)
    trimmed = apply_site(ref, estimate_site(ref, N, site="B"), N)
    untrimmed = apply_site(ref, estimate_site(ref, N, site="B", prior_trim=0), N)
    others = [c for c in R.columns if c != "flat"]

    def ratio(H):
        return np.median(H[others].std() / R[others].std())

    assert 0.8 < ratio(trimmed) < 1.25
    assert ratio(untrimmed) > 1.5 or ratio(untrimmed) < 0.5  # the failure the trimming prevents
