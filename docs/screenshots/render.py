"""Render the pictures of docs/screenshots that can honestly be made without Slicer's GUI.

rfs_chart.png is the RFS figure the module's per-patient report embeds, drawn by the report code
(gistrisk.report, matplotlib) for a result computed by the module's Logic code headless: the real
lung2 CT of PyRadiomics' test data (a lung tumour, not a GIST) through a demo bundle fitted on the
synthetic demo cohort. Usage (from the repository root, with the project's venv)::

    .venv/bin/python docs/screenshots/render.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "SlicerGISTRisk"))
sys.path.insert(0, str(REPO / "tests" / "slicer"))  # the demo cohort and the application's scene set-up

from demo_cohort import N_SLIDE_FEATURES, fit_command, write_demo_cohort, write_fit_config  # noqa: E402
from gistrisk.report import write_patient_report  # noqa: E402
from slicer_app_shim import new_scene  # noqa: E402
from SlicerGISTRiskLib import mrml_convert as mc  # noqa: E402
from SlicerGISTRiskLib.report_html import report_inputs  # noqa: E402
from SlicerGISTRiskLib.workflow import CaseInputs, run_case  # noqa: E402

CLINICAL = {"tumour_size_cm": "7.0", "mitoses_per_5mm2": "4", "site": "stomach", "rupture": "no"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared real data")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = new_scene()
        volume = mc.load_volume_file(scene, args.data / "ct" / "lung2_image.nrrd", name="lung2")
        seg = mc.labelmap_file_to_segmentation(scene, args.data / "ct" / "lung2_label.nrrd", volume)
        sid = mc.segment_ids(seg)[0]
        radiomics = run_case(CaseInputs(volume, seg, sid, params="pyradiomics_baseline")).radiomics
        files = write_demo_cohort(tmp / "cohort", radiomics.features)
        bundle = tmp / "model"
        config = write_fit_config(tmp / "fit.yaml")
        cmd = [sys.executable, "-m", "gistrisk", *fit_command("gistrisk", files, bundle, config)[1:]]
        subprocess.run(cmd, check=True, capture_output=True)
        slide = tmp / "slide.csv"
        pd.DataFrame([{"patient_id": "LUNG2", **{f"path_{j:04d}": 0.5 for j in range(N_SLIDE_FEATURES)}}]).to_csv(
            slide, index=False)
        result = run_case(CaseInputs(volume, seg, sid, bundle_dir=str(bundle), clinical_values=CLINICAL,
                                     pathology_file=str(slide), params="pyradiomics_baseline", patient_id="LUNG2"))
        p = result.prediction
        write_patient_report(tmp / "report.html", model=p.model, prediction=p.prediction,
                             survival_curve=(p.curve["time"].to_numpy(), p.curve["survival"].to_numpy()),
                             modified_nih=p.nih, patient_id=result.patient_id, features=report_inputs(result),
                             figures_dir=tmp / "figures")
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp / "figures" / "rfs.png", args.out / "rfs_chart.png")
    print(args.out / "rfs_chart.png")


if __name__ == "__main__":
    main()
