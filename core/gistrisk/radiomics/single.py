"""One case from files to a one-row table, with diagnostics and provenance beside it."""

from __future__ import annotations

from pathlib import Path

from gistrisk.atomic import row_imports, write_json, write_row
from gistrisk.errors import InputError
from gistrisk.paths import sidecar
from gistrisk.provenance import file_sha256, package_versions, provenance
from gistrisk.radiomics.extract import extract_files
from gistrisk.radiomics.params import resolve_params


def extract_single(image: Path, mask: Path, out: Path, *, label: int | None = None, segment: str | None = None,
                   params: str | Path | None = None, patient_id: str | None = None, modality: str = "CT",
                   geometry_policy: str = "resample", workers: int | None = None) -> dict:
    """Write ``out`` (patient_id + features), ``<stem>.diagnostics.json`` and ``<stem>.provenance.json``.

    ``workers`` processes share the case's image types (None = the available cores, at most 4; 1 = sequential).
    """
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise InputError("output must end in .parquet or .csv", file=str(out))
    pid = patient_id or Path(image).name.split(".")[0]
    res = extract_files(image, mask, label=label, segment=segment, params=params, patient_id=pid,
                        modality=modality, geometry_policy=geometry_policy, workers=workers,
                        idle_imports=row_imports(out))  # this process ends after the case
    params_path = resolve_params(params)
    write_row(out, {"patient_id": pid, **res.features})
    write_json(sidecar(out, "diagnostics", ".json"), res.diagnostics)
    write_json(sidecar(out, "provenance", ".json"), provenance(
        parameters={"params_file": str(params_path), "params_sha256": file_sha256(params_path), "label": label,
                    "segment": segment, "modality": modality, "geometry_policy": geometry_policy},
        command="gistrisk radiomics extract", radiomics_versions=package_versions(("pyradiomics-bhklab", "SimpleITK")),
        inputs={"image": str(image), "mask": str(mask)}))
    return {"n_features": len(res.features),
            "workers": res.diagnostics.get("gistrisk_parallel", {}).get("workers", 1)}
