"""Clinical risk tables every GIST paper reports as the comparator.

Modified NIH consensus classification: Joensuu H. Risk stratification of patients diagnosed with
gastrointestinal stromal tumor. Hum Pathol 2008;39:1411-9 (Table 2). Sizes in cm (largest
diameter), mitoses per 50 high-power fields (about 5 mm2). Boundaries as implemented here:
"<= 2.0" is very low-size, "2.1-5.0" means > 2.0 and <= 5.0, "5.1-10.0" means > 5.0 and <= 10.0;
"6-10 mitoses" means > 5 and <= 10. High is evaluated first: any high condition wins.

AFIP (Miettinen & Lasota, Semin Diagn Pathol 2006) risk of progression, as tabulated by the NCI PDQ.
"""

from __future__ import annotations

import logging
import math
import numbers

import pandas as pd

from gistrisk.clinical.dictionary import UNKNOWN, ClinicalDictionary, default_dictionary

log = logging.getLogger(__name__)
NIH_ORDER = ("very low", "low", "intermediate", "high")
# (mitoses > 5, size band) -> {site: (category, % progression or None)}; size bands: 0 (<=2), 1 (2-5], 2 (5-10], 3 (>10)
_AFIP: dict[tuple[bool, int], dict[str, tuple[str, float | None]]] = {
    (False, 0): {"gastric": ("none", 0.0), "duodenum": ("none", 0.0), "jejunum/ileum": ("none", 0.0), "rectum": ("none", 0.0)},
    (False, 1): {"gastric": ("very low", 1.9), "duodenum": ("low", 4.3), "jejunum/ileum": ("low", 8.3), "rectum": ("low", 8.5)},
    (False, 2): {"gastric": ("low", 3.6), "duodenum": ("moderate", 24.0), "jejunum/ileum": ("insufficient data", None),
                 "rectum": ("insufficient data", None)},
    (False, 3): {"gastric": ("moderate", 10.0), "duodenum": ("high", 52.0), "jejunum/ileum": ("high", 34.0), "rectum": ("high", 57.0)},
    (True, 0): {"gastric": ("none", None), "duodenum": ("high", None), "jejunum/ileum": ("insufficient data", None),
                "rectum": ("high", 54.0)},
    (True, 1): {"gastric": ("moderate", 16.0), "duodenum": ("high", 73.0), "jejunum/ileum": ("high", 50.0), "rectum": ("high", 52.0)},
    (True, 2): {"gastric": ("high", 55.0), "duodenum": ("high", 85.0), "jejunum/ileum": ("insufficient data", None),
                "rectum": ("insufficient data", None)},
    (True, 3): {"gastric": ("high", 86.0), "duodenum": ("high", 90.0), "jejunum/ileum": ("high", 86.0), "rectum": ("high", 71.0)},
}


def _check(size_cm: float, mitoses: float) -> None:
    for name, v in (("size_cm", size_cm), ("mitoses", mitoses)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")


def site_term(site: str | None, dictionary: ClinicalDictionary | None = None) -> str | None:
    """The dictionary's site term for any of its synonyms or ICD-O codes (None when empty);
    a site the dictionary does not know raises ``InputError``."""
    return (dictionary or default_dictionary()).category("site", site)


def is_gastric(site: str | None, dictionary: ClinicalDictionary | None = None) -> bool | None:
    """True for a gastric site (any synonym, sub-site or ICD-O C16 code), None when unknown."""
    d = dictionary or default_dictionary()
    term = site_term(site, d)
    if term is None or term == UNKNOWN:
        return None
    return bool(d.site_attributes(term).get("gastric", False))


def modified_nih(size_cm: float, mitoses_per_50hpf: float, site: str | None, rupture: bool = False,
                 dictionary: ClinicalDictionary | None = None) -> str | None:
    """Modified NIH (Joensuu 2008) category: "very low", "low", "intermediate" or "high".

    ``site`` is read through the clinical dictionary (synonyms, sub-sites, ICD-O codes, Chinese
    terms). With the site unknown, the category is still given where the table does not depend on
    the site, and is None (unclassified) where it does.
    """
    _check(size_cm, mitoses_per_50hpf)
    s, m = float(size_cm), float(mitoses_per_50hpf)
    if rupture or s > 10 or m > 10 or (s > 5 and m > 5):
        return "high"
    gastric = is_gastric(site, dictionary)
    if gastric is None and ((2 < s <= 5 and m > 5) or (5 < s <= 10 and m <= 5)):
        return None
    if not gastric and ((2 < s <= 5 and m > 5) or (5 < s <= 10 and m <= 5)):
        return "high"
    if (s <= 5 and 5 < m <= 10) or (gastric and 2 < s <= 5 and m > 5) or (gastric and 5 < s <= 10 and m <= 5):
        return "intermediate"
    if s <= 2 and m <= 5:
        return "very low"
    if 2 < s <= 5 and m <= 5:
        return "low"
    raise AssertionError(f"unclassified size={s}, mitoses={m}, site={site}")  # every case is covered above


def nih_rank(category: str) -> int:
    """0 (very low) .. 3 (high), for C-index and ordering."""
    return NIH_ORDER.index(category)


def afip_risk(size_cm: float, mitoses_per_50hpf: float, site: str | None,
              dictionary: ClinicalDictionary | None = None) -> tuple[str, float | None]:
    """AFIP category and % risk of progression; ("not tabulated", None) for sites outside the table,
    ("unclassified", None) for an unknown site."""
    _check(size_cm, mitoses_per_50hpf)
    d = dictionary or default_dictionary()
    term = site_term(site, d)
    if term is None or term == UNKNOWN:
        return "unclassified", None
    group = d.site_attributes(term).get("afip")
    if group is None:
        return "not tabulated", None
    s = float(size_cm)
    band = 0 if s <= 2 else 1 if s <= 5 else 2 if s <= 10 else 3
    return _AFIP[(float(mitoses_per_50hpf) > 5, band)][group]


def nih_categories(clinical: pd.DataFrame, dictionary: ClinicalDictionary | None = None,
                   source: str | None = None) -> pd.Series | None:
    """Modified NIH category per patient of a clinical table indexed by patient_id.

    Columns are found and cells read through the clinical dictionary (any of its column names,
    synonyms, units). None when the table lacks size, mitoses or site. Patients who cannot be
    classified (a value missing, or an unknown site where the table depends on it) are left out
    and named in a warning; a missing rupture is read as no rupture and counted in a warning.
    """
    d = dictionary or default_dictionary()
    source = source or clinical.attrs.get("source")
    cols = {v: d.column_for(clinical.columns, v) for v in ("tumour_size_cm", "mitoses_per_5mm2", "site", "rupture")}
    if not (cols["tumour_size_cm"] and cols["mitoses_per_5mm2"] and cols["site"]):
        return None
    out, unclassified, no_rupture = {}, [], []
    for pid, r in clinical.iterrows():
        kw = {"file": source, "patient": pid}
        size = d.number("tumour_size_cm", r[cols["tumour_size_cm"]], column=cols["tumour_size_cm"], **kw)
        mit = d.number("mitoses_per_5mm2", r[cols["mitoses_per_5mm2"]], column=cols["mitoses_per_5mm2"], **kw)
        site = d.category("site", r[cols["site"]], column=cols["site"], **kw)
        rupture = d.boolean("rupture", r[cols["rupture"]], column=cols["rupture"], **kw) if cols["rupture"] else math.nan
        if math.isnan(rupture):
            no_rupture.append(str(pid))
        cat = None if math.isnan(size) or math.isnan(mit) or site is None else \
            modified_nih(size, mit, site, rupture == 1.0, d)
        if cat is None:
            unclassified.append(str(pid))
        else:
            out[pid] = cat
    if unclassified:
        log.warning("modified NIH: %d patient(s) unclassified (size, mitoses or site missing, or the site unknown "
                    "where the table depends on it): %s", len(unclassified), ", ".join(unclassified[:10]))
    if no_rupture and len(no_rupture) < len(clinical):
        log.warning("modified NIH: rupture not recorded for %d patient(s), read as no rupture: %s", len(no_rupture),
                    ", ".join(no_rupture[:10]))
    s = pd.Series(out, name="modified_nih", dtype=object)
    s.index.name = clinical.index.name
    s.attrs["unclassified"] = unclassified
    return s
