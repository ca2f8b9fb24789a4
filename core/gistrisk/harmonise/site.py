"""The harmonisation reference a bundle carries, and site files tied to it.

At fit time the development cohort's features of each harmonised modality become the reference
(``info.harmonisation`` in the bundle). ``gistrisk harmonise`` estimates a site's ComBat location and
scale from a batch of that site's cases and writes a small JSON site file that names the bundle's
reference by its hash; ``predict``, ``validate`` and the Slicer module map each patient's features with
it, one patient at a time if need be.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.atomic import write_json
from gistrisk.errors import InputError
from gistrisk.harmonise.combat import METHOD, Reference, SiteAdjustment, apply_site, estimate_site, fit_reference

SITE_FILE_KIND = "gistrisk.SiteFile"
SITE_FILE_SCHEMA = 1
ID = "patient_id"


def fit_references(tables: dict[str, pd.DataFrame], modalities: list[str], covariates: list[str],
                   min_site_cases: int) -> dict[str, Any] | None:
    """``info.harmonisation`` of a bundle: the reference of each harmonised modality present in ``tables``
    (tables indexed by patient_id, development rows only), or None when none is present."""
    refs = {}
    for m in modalities:
        if m not in tables:
            continue
        X = tables[m].select_dtypes("number")
        refs[m] = fit_reference(X, covariate_frame(tables, m, covariates, X.index)).to_dict()
    if not refs:
        return None
    return {"method": METHOD, "min_site_cases": int(min_site_cases), "covariates": list(covariates),
            "references": refs, "reference_sha256": {m: reference_sha256(r) for m, r in refs.items()}}


def reference_sha256(reference: dict[str, Any]) -> str:
    """The hash a site file uses to name the reference it was estimated against."""
    return hashlib.sha256(json.dumps(reference, sort_keys=True, allow_nan=False).encode()).hexdigest()


def references(info: dict[str, Any]) -> dict[str, Reference]:
    """The bundle's references by modality ({} for a bundle fitted without any)."""
    h = info.get("harmonisation") or {}
    return {m: Reference.from_dict(r) for m, r in (h.get("references") or {}).items()}


def covariate_frame(tables: dict[str, pd.DataFrame], modality: str, names: list[str],
                    index: pd.Index) -> pd.DataFrame | None:
    """The covariates of ``index``'s patients, each from the modality's table or else the clinical table."""
    if not names:
        return None
    cols = {}
    for name in names:
        where = next((t for t in (modality, "clinical") if t in tables and name in _indexed(tables[t]).columns), None)
        if where is None:
            raise InputError(f"harmonisation covariate {name!r} is in neither the {modality} table nor a clinical "
                             "table; give the clinical table (-m clinical=...)", column=name)
        table = _indexed(tables[where])
        absent = [i for i in index if i not in table.index]
        if absent:
            raise InputError(f"harmonisation covariate {name!r}: patient has {modality} features but no row in the "
                             f"{where} table", file=table.attrs.get("source"), patient=str(absent[0]))
        cols[name] = table.loc[index, name]
    frame = pd.DataFrame(cols, index=index)
    frame.attrs["source"] = _indexed(tables.get("clinical", tables[modality])).attrs.get("source")
    return frame


def estimate_sites(info: dict[str, Any], tables: dict[str, pd.DataFrame], site: str) -> dict[str, SiteAdjustment]:
    """Each harmonised modality's adjustment for ``site`` from its cases in ``tables`` (features only)."""
    h = info.get("harmonisation") or {}
    refs = references(info)
    present = [m for m in refs if m in tables]
    if not present:
        raise InputError(f"none of the model's harmonised modalities ({', '.join(refs) or 'none'}) is given; "
                         "nothing to harmonise" if refs else "this model was fitted without a harmonisation "
                         "reference (refit it with this gistrisk to harmonise other sites)")
    out = {}
    for m in present:
        X = _indexed(tables[m])
        cov = covariate_frame(tables, m, refs[m].covariates, X.index)
        out[m] = estimate_site(refs[m], X, cov, site=site, min_cases=int(h.get("min_site_cases", 0)))
    return out


def harmonise_tables(info: dict[str, Any], tables: dict[str, pd.DataFrame],
                     adjustments: dict[str, SiteAdjustment]) -> dict[str, pd.DataFrame]:
    """``tables`` with each adjusted modality's features mapped onto the reference (same shape and ids)."""
    refs = references(info)
    out = dict(tables)
    for m, adj in adjustments.items():
        if m not in tables:
            continue
        had_id = ID in tables[m].columns
        X = _indexed(tables[m])
        cov = covariate_frame(tables, m, refs[m].covariates, X.index)
        H = apply_site(refs[m], adj, X, cov)
        H.attrs = dict(X.attrs)
        out[m] = H.reset_index() if had_id else H
        out[m].attrs = dict(X.attrs)
    return out


def write_site_file(path: str | Path, info: dict[str, Any], adjustments: dict[str, SiteAdjustment],
                    provenance: dict[str, Any]) -> Path:
    """A site file: per modality the site's adjustment and the hash of the reference it maps onto."""
    h = info.get("harmonisation") or {}
    doc = {"kind": SITE_FILE_KIND, "schema_version": SITE_FILE_SCHEMA, "method": h.get("method", METHOD),
           "site": next(iter(adjustments.values())).site,
           "modalities": {m: {"reference_sha256": h["reference_sha256"][m], **a.to_dict()}
                          for m, a in adjustments.items()},
           "provenance": provenance}
    write_json(Path(path), doc, allow_nan=False)
    return Path(path)


def read_site_file(path: str | Path, info: dict[str, Any]) -> dict[str, SiteAdjustment]:
    """The adjustments of a site file, refused unless it was estimated against this bundle's reference."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"not a readable site file ({e})", file=str(path)) from e
    if not isinstance(doc, dict) or doc.get("kind") != SITE_FILE_KIND:
        raise InputError("not a gistrisk site file (from `gistrisk harmonise`)", file=str(path))
    if not isinstance(doc.get("schema_version"), int) or doc["schema_version"] > SITE_FILE_SCHEMA:
        raise InputError(f"site file schema {doc.get('schema_version')!r} is newer than this gistrisk reads",
                         file=str(path))
    expected = (info.get("harmonisation") or {}).get("reference_sha256") or {}
    out = {}
    for m, d in (doc.get("modalities") or {}).items():
        if m not in expected:
            raise InputError(f"the site file harmonises {m!r}, which this model has no reference for", file=str(path))
        if d.get("reference_sha256") != expected[m]:
            raise InputError(f"the site file was estimated for another model ({m} reference "
                             f"{str(d.get('reference_sha256'))[:12]}..., this model's {expected[m][:12]}...); "
                             "estimate it again with `gistrisk harmonise --model` this model", file=str(path))
        try:
            out[m] = SiteAdjustment.from_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"site file is incomplete or corrupt ({e})", file=str(path)) from e
        if not all(np.isfinite(v).all() for v in (out[m].gamma, out[m].delta)):
            raise InputError("site file holds a number that is not finite", file=str(path))
    if not out:
        raise InputError("the site file holds no modality", file=str(path))
    return out


def _refuse_constant(name: str):
    raise ValueError(f"the file contains {name}")


def _indexed(df: pd.DataFrame) -> pd.DataFrame:
    if ID not in df.columns:
        return df
    out = df.copy()
    out[ID] = out[ID].astype(str)
    out = out.set_index(ID)
    out.attrs = dict(df.attrs)
    return out
