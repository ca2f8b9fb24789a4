"""Clinical risk tables every GIST paper reports as the comparator.

Modified NIH consensus classification: Joensuu H. Risk stratification of patients diagnosed with
gastrointestinal stromal tumor. Hum Pathol 2008;39:1411-9 (Table 2). Sizes in cm (largest
diameter), mitoses per 50 high-power fields (about 5 mm2). Boundaries as implemented here:
"<= 2.0" is very low-size, "2.1-5.0" means > 2.0 and <= 5.0, "5.1-10.0" means > 5.0 and <= 10.0;
"6-10 mitoses" means > 5 and <= 10. High is evaluated first: any high condition wins.

AFIP (Miettinen & Lasota, Semin Diagn Pathol 2006) risk of progression, as tabulated by the NCI PDQ.
"""

from __future__ import annotations

import math

NIH_ORDER = ("very low", "low", "intermediate", "high")

_GASTRIC = {"stomach", "gastric"}
_AFIP_SITE = {
    "stomach": "gastric", "gastric": "gastric", "duodenum": "duodenum", "duodenal": "duodenum",
    "jejunum": "jejunum/ileum", "ileum": "jejunum/ileum", "small intestine": "jejunum/ileum",
    "small bowel": "jejunum/ileum", "jejunum/ileum": "jejunum/ileum", "rectum": "rectum", "rectal": "rectum",
}
# (mitoses > 5, size band) -> {site: (category, % progression or None)}; size bands: 0 (<=2), 1 (2-5], 2 (5-10], 3 (>10)
_AFIP = {
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
        if v is None or not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
            raise ValueError(f"{name} must be a non-negative number, got {v!r}")


def is_gastric(site: str) -> bool:
    return str(site).strip().lower() in _GASTRIC


def modified_nih(size_cm: float, mitoses_per_50hpf: float, site: str, rupture: bool = False) -> str:
    """Modified NIH (Joensuu 2008) category: "very low", "low", "intermediate" or "high"."""
    _check(size_cm, mitoses_per_50hpf)
    s, m, gastric = float(size_cm), float(mitoses_per_50hpf), is_gastric(site)
    if rupture or s > 10 or m > 10 or (s > 5 and m > 5):
        return "high"
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


def afip_risk(size_cm: float, mitoses_per_50hpf: float, site: str) -> tuple[str, float | None]:
    """AFIP category and % risk of progression; ("not tabulated", None) for sites outside the table."""
    _check(size_cm, mitoses_per_50hpf)
    group = _AFIP_SITE.get(str(site).strip().lower())
    if group is None:
        return "not tabulated", None
    s = float(size_cm)
    band = 0 if s <= 2 else 1 if s <= 5 else 2 if s <= 10 else 3
    return _AFIP[(float(mitoses_per_50hpf) > 5, band)][group]
