"""Several sites inside the development cohort: reference-site ComBat fitted with each pipeline.

When the fit config names a site column, each harmonised modality's table carries the patient's site in
:data:`SITE`. Every pipeline (each cross-validation fold's and the final one) fits a
:class:`SiteHarmoniser` on its own training rows: the largest site among them is the reference and is
left as it is, every other site is mapped onto it from that site's training rows (features only); the
held-out rows of a site are mapped with the adjustment estimated on the training rows. So harmonisation,
like scaling and selection, never sees a held-out patient.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from gistrisk.errors import InputError
from gistrisk.harmonise.combat import (
    MIN_SITE_CASES,
    Reference,
    SiteAdjustment,
    apply_site,
    estimate_site,
    fit_reference,
)

#: column holding each development patient's site in a harmonised modality's table during a fit
SITE = "__site__"
#: attribute of that table holding the smallest number of cases a site needs (the fit config's)
MIN_CASES_ATTR = "min_site_cases"


def reference_site(sites: pd.Series) -> str:
    """The site with most patients (ties: the first name in sorted order)."""
    counts = sites.astype(str).value_counts()
    return str(sorted(counts[counts == counts.max()].index)[0])


class SiteHarmoniser:
    """Maps every development site onto the largest one.

    Attributes
    ----------
    reference_site_ : str
    reference_ : Reference                  the reference site's feature model
    sites_ : dict[str, SiteAdjustment]      every other site's adjustment
    """

    def fit(self, X: pd.DataFrame) -> SiteHarmoniser:
        """``X``: features plus the :data:`SITE` column, one row per patient."""
        sites = X[SITE].astype(str)
        features = X.drop(columns=SITE).select_dtypes("number")
        min_cases = int(X.attrs.get(MIN_CASES_ATTR, MIN_SITE_CASES))
        self.reference_site_ = reference_site(sites)
        self.reference_ = fit_reference(features[sites == self.reference_site_])
        self.sites_: dict[str, SiteAdjustment] = {}
        for site in sorted(set(sites) - {self.reference_site_}):
            rows = features[sites == site]
            rows.attrs["source"] = X.attrs.get("source")
            self.sites_[site] = estimate_site(self.reference_, rows, site=site, min_cases=min_cases)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` without the :data:`SITE` column, each site's rows mapped onto the reference site;
        rows without a site column are taken as already on the reference (new patients mapped by a site file)."""
        if SITE not in X.columns:
            return X
        sites = X[SITE].astype(str)
        out = X.drop(columns=SITE)
        unknown = sorted(set(sites) - set(self.sites_) - {self.reference_site_})
        if unknown:
            raise InputError(f"site {unknown[0]!r} was not among the development sites this model was fitted on "
                             f"({', '.join([self.reference_site_, *self.sites_])}); make a site file for it with "
                             "`gistrisk harmonise`", file=X.attrs.get("source"))
        for site, adjustment in self.sites_.items():
            rows = sites == site
            if rows.any():
                mapped = apply_site(self.reference_, adjustment, out[rows])
                out.loc[rows, self.reference_.features] = mapped[self.reference_.features]
        out.attrs = dict(X.attrs)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"reference_site": self.reference_site_, "reference": self.reference_.to_dict(),
                "sites": {s: a.to_dict() for s, a in self.sites_.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiteHarmoniser:
        h = cls()
        h.reference_site_ = str(d["reference_site"])
        h.reference_ = Reference.from_dict(d["reference"])
        h.sites_ = {s: SiteAdjustment.from_dict(a) for s, a in d["sites"].items()}
        return h
