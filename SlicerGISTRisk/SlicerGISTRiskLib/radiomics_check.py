"""Does the PyRadiomics here, with this parameter file, compute the numbers the model was fitted on?

The model bundle records the features of a small deterministic phantom
(``info["extraction"]["radiomics"]["phantom"]``, written at fit time). Before a
prediction the module extracts the same phantom with the PyRadiomics it will use
(SlicerRadiomics' or a pip one) and the parameter file chosen, and compares the
numbers within :data:`gistrisk.radiomics.phantom.RTOL`: a mismatch is refused, or,
when the user goes on anyway, written as a warning with every result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gistrisk.errors import InputError
from gistrisk.radiomics.params import params_sha256, resolve_params
from gistrisk.radiomics.phantom import ATOL, RTOL, phantom_differences, phantom_features

from .dependencies import radiomics_source

NO_RECORD = ("the model bundle records no radiomics phantom features, so whether this PyRadiomics and parameter "
             "file compute the numbers the model was fitted on cannot be checked")


class RadiomicsMismatch(InputError):
    """The phantom's features here differ from the model's record beyond the tolerance."""


def recorded_extraction(model: Any) -> dict[str, Any]:
    """The bundle's radiomics extraction record ({} when none)."""
    info = getattr(model, "info_", None) or {}
    return ((info.get("extraction") or {}).get("radiomics")) or {}


def phantom_check(model: Any, params: str | Path | None, *, allow_mismatch: bool = False,
                  cache: dict[str, dict[str, float]] | None = None) -> list[str]:
    """Compare the phantom extracted here with the model's record.

    Parameters
    ----------
    model : the loaded bundle; params : the parameter file of this extraction (name, path or None)
    allow_mismatch : go on when the numbers differ (the user insisted)
    cache : params sha256 -> phantom features, kept by the caller (one extraction per file a session)

    Returns
    -------
    Warnings to show with every result ([] when the numbers agree or the model has no radiomics).

    Raises
    ------
    RadiomicsMismatch when the numbers differ and ``allow_mismatch`` is False.
    """
    record = recorded_extraction(model)
    recorded = record.get("phantom")
    if not recorded:
        return [NO_RECORD] if "radiomics" in (getattr(model, "modalities_", None) or []) else []
    path = resolve_params(params)
    key = params_sha256(path)
    here = cache.get(key) if cache is not None else None
    if here is None:
        here = phantom_features(path)
        if cache is not None:
            cache[key] = here
    diff = phantom_differences(recorded, here)
    if not diff:
        return []
    src = radiomics_source()
    msg = (f"radiomics computed here differ from the model's: {len(diff)} of {len(set(recorded) | set(here))} "
           f"phantom features disagree beyond a relative tolerance of {RTOL:g} (absolute {ATOL:g}), e.g. "
           f"{'; '.join(diff[:2])}. This PyRadiomics ({src['provider']} {src['version']}) with parameter file "
           f"{path.name} is not what the model was fitted with (recorded: PyRadiomics {record.get('pyradiomics', '?')}, "
           f"parameter file {record.get('params_file', '?')}), so this patient's features are not comparable "
           f"with the training cohort's")
    if not allow_mismatch:
        raise RadiomicsMismatch(msg + ". Use the model's parameter file and PyRadiomics, or go on anyway: every "
                                "result will then carry this warning.")
    return [msg]
