"""``gistrisk radiomics extract``: one case, or a cohort from a manifest. Heavy imports stay inside."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, help="CT radiomics: one case or a whole cohort.")

EPILOG = """\
Examples:

  one case (Slicer segmentation, segment chosen by name):

    gistrisk radiomics extract --image ct.nrrd --mask tumour.seg.nrrd --segment tumour --out row.csv

  DICOM CT folder + RTSTRUCT (ROI by name):

    gistrisk radiomics extract --image pat2/ --mask pat2/RS.dcm --segment GTV-1 --out row.csv

  a cohort on 2 local processes (manifest columns: patient_id,image,mask[,label|segment]):

    gistrisk radiomics extract --manifest cases.csv --out features.parquet --jobs 2

  the same on a running Dask cluster (e.g. started with dask-jobqueue on SLURM):

    gistrisk radiomics extract --manifest cases.csv --out features.parquet --scheduler tcp://head:8786

Shipped parameter files (--params NAME): gist_ct_paper (default), pyradiomics_baseline, ibsi_phantom.
A cohort writes <stem>.diagnostics.*, <stem>.failures.csv and <stem>.provenance.json beside --out;
re-running skips cases already done (cache keyed by input file hashes and the parameter-file hash).
Exit status: 0 all cases extracted; 1 some cases failed (listed in <stem>.failures.csv); 2 bad input.
"""


@app.command("extract", epilog=EPILOG)
def extract(
    out: Path = typer.Option(..., "--out", "-o", help="Output table: .csv or .parquet."),
    image: Optional[Path] = typer.Option(None, "--image", help="CT: NRRD/NIfTI file or DICOM series folder."),
    mask: Optional[Path] = typer.Option(None, "--mask",
                                        help="Label map, Slicer .seg.nrrd, DICOM RTSTRUCT or SEG (file or folder)."),
    label: Optional[int] = typer.Option(None, "--label", help="Label value (or DICOM ROI/segment number)."),
    segment: Optional[str] = typer.Option(None, "--segment", help="Segment / RTSTRUCT ROI / SEG segment name."),
    manifest: Optional[Path] = typer.Option(None, "--manifest",
                                            help="Cohort CSV: patient_id,image,mask[,label|segment][,modality]."),
    params: Optional[str] = typer.Option(None, "--params",
                                         help="Parameter file (YAML/JSON) or shipped name; default gist_ct_paper."),
    patient_id: Optional[str] = typer.Option(None, "--patient-id", help="Patient id for a single case."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Local worker processes (cohort)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, tcp://host:port."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Per-case cache (default .<stem>.cache)."),
    modality: str = typer.Option("CT", "--modality", help="CT checks for Hounsfield units; e.g. MR skips it."),
    strict_geometry: bool = typer.Option(False, "--strict-geometry",
                                         help="Fail instead of resampling a mask that is not on the image grid."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (cohort)."),
) -> None:
    """Extract PyRadiomics features for one case (--image/--mask) or a cohort (--manifest)."""
    from gistrisk.errors import InputError

    policy = "strict" if strict_geometry else "resample"
    if manifest is not None:
        if image is not None or mask is not None:
            raise InputError("give either --manifest or --image/--mask, not both")
        from gistrisk.radiomics.cohort import extract_cohort

        res = extract_cohort(manifest, out, params=params, jobs=jobs, scheduler=scheduler, cache_dir=cache_dir,
                             modality=modality, geometry_policy=policy, progress=progress)
        typer.echo(f"{res.n_done}/{res.n_cases} cases extracted ({res.n_cached} from cache), {res.n_failed} failed "
                   f"-> {res.features}")
        if res.n_failed:
            typer.echo(f"failures: {res.failures}", err=True)
            raise typer.Exit(1)
        return
    if image is None or mask is None:
        raise InputError("give --image and --mask for one case, or --manifest for a cohort")
    from gistrisk.radiomics.single import extract_single

    written = extract_single(image, mask, out, label=label, segment=segment, params=params,
                             patient_id=patient_id, modality=modality, geometry_policy=policy)
    typer.echo(f"{written['n_features']} features -> {out}")
