"""How a feature table was extracted, read from the provenance file beside it, and whether a new
table was extracted the way the model's training tables were.

A radiomics score computed with another parameter file or PyRadiomics version, or a slide vector
from another classifier, tile size, resolution or stain normalisation, is not the score the model
was fitted on: ``predict`` and ``validate`` refuse such a table unless told to go on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gistrisk.errors import InputError
from gistrisk.paths import sidecar

log = logging.getLogger(__name__)

#: what must agree between the training tables and a new table, per kind of extraction
COMPARED = {
    "radiomics": ("pyradiomics", "params_sha256"),
    "pathology": ("classifier_sha256", "tile_size", "mpp", "stain", "tumour_threshold"),
}


def provenance_file(table: str | Path) -> Path:
    """``features.parquet`` -> ``features.provenance.json`` (the extract commands' rule)."""
    return sidecar(Path(table), "provenance", ".json")


def read_extraction(table: str | Path) -> dict[str, Any] | None:
    """The extraction record of a feature table, or None when no provenance lies beside it or it
    records no extraction (a hand-made table, a clinical table)."""
    path = provenance_file(table)
    if not path.is_file():
        return None
    try:
        prov = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable provenance file ({e})", file=str(path)) from e
    params = prov.get("parameters") or {}
    if "params_sha256" in params:
        versions = prov.get("radiomics_versions") or prov.get("versions") or {}
        return {"kind": "radiomics", "source": str(path),
                "pyradiomics": versions.get("pyradiomics-bhklab") or versions.get("pyradiomics"),
                "params_sha256": params["params_sha256"], "params_file": Path(str(params.get("params_file"))).name,
                "params_path": params.get("params_file")}
    if "classifier_sha256" in params:
        tile = params.get("tile_config") or {}
        # the encoder (name, weights hash, preprocessing) is part of the classifier, so its hash already
        # decides whether tables agree; it is kept here so the bundle says which encoder made the features
        # (tables from before encoders were a choice: the paper's ResNet50)
        return {"kind": "pathology", "source": str(path), "classifier_sha256": params["classifier_sha256"],
                "tile_size": tile.get("tile_size"), "mpp": tile.get("target_mpp"),
                "stain": params.get("stain"), "tumour_threshold": (params.get("feature") or {}).get("tumour_threshold"),
                "encoder": params.get("encoder") or {"name": "resnet50"},
                "from_embeddings": params.get("source") == "embeddings"}
    return None


def differences(recorded: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the model's extraction and a new table's, one line per setting."""
    if recorded.get("kind") != new.get("kind"):
        return [f"kind of extraction: {recorded.get('kind')} (model) vs {new.get('kind')} (this table)"]
    out = []
    for key in COMPARED.get(recorded["kind"], ()):
        a, b = recorded.get(key), new.get(key)
        if a != b:
            out.append(f"{key}: {_short(a)} (model) vs {_short(b)} (this table)")
    return out


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
    return s[:16] + "..." if len(s) > 40 and "sha" not in s else s


def check_tables(recorded: dict[str, Any] | None, tables: dict[str, Path], *, allow_mismatch: bool) -> list[str]:
    """Compare each new table's extraction with the model's; refuse a mismatch (``InputError``)
    unless ``allow_mismatch``, then return the warnings to show with every result.

    Parameters
    ----------
    recorded : modality -> extraction record stored in the bundle (None when training had none)
    tables : modality -> path of the new table
    allow_mismatch : go on (with warnings) when an extraction differs
    """
    warnings = []
    for m, path in tables.items():
        rec = (recorded or {}).get(m)
        if rec is None:
            continue
        new = read_extraction(path)
        if new is None:
            warnings.append(f"{m}: {path} has no provenance beside it ({provenance_file(path).name}); whether it "
                            f"was extracted as the model's training table cannot be checked")
            continue
        diff = differences(rec, new)
        if not diff:
            continue
        msg = f"{m} features extracted differently from the model's training table: " + "; ".join(diff)
        if not allow_mismatch:
            raise InputError(msg + ". Re-extract with the model's settings, or pass --allow-extraction-mismatch "
                             "to go on with a warning on every result", file=str(path))
        warnings.append(msg)
    for w in warnings:
        log.warning(w)
    return warnings
