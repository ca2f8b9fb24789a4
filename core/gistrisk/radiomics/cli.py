"""``gistrisk radiomics extract``: one case, or a cohort from a manifest. Heavy imports stay inside."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gistrisk.errors import InputError
from gistrisk.paths import check_output

# The runs (gistrisk.radiomics.runs, .single, .robustness_io) are imported inside the commands: with
# PyRadiomics, SimpleITK, numpy and pandas they add about 0.7 s to `gistrisk radiomics extract --help`
# (measured: 0.11 s -> 0.84 s for importing this module).

app = typer.Typer(no_args_is_help=True, help="CT radiomics: one case or a whole cohort.")

EPILOG = """\
Examples:

  one case (Slicer segmentation, segment chosen by name):

    gistrisk radiomics extract --image ct.nrrd --mask tumour.seg.nrrd --segment tumour --out row.csv

  DICOM CT folder + RTSTRUCT (ROI by name):

    gistrisk radiomics extract --image pat2/ --mask pat2/RS.dcm --segment GTV-1 --out row.csv

  one case on 2 processes (its image types shared out; same features as --workers 1):

    gistrisk radiomics extract --image ct.nrrd --mask tumour.seg.nrrd --out row.csv --workers 2

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
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Processes sharing one case's image types (default: the "
                                               "available cores, at most 4; 1 = sequential). One case only."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, tcp://host:port."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Per-case cache (default .<stem>.cache)."),
    modality: str = typer.Option("CT", "--modality", help="CT checks for Hounsfield units; e.g. MR skips it."),
    strict_geometry: bool = typer.Option(False, "--strict-geometry",
                                         help="Fail instead of resampling a mask that is not on the image grid."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (cohort)."),
) -> None:
    """Extract PyRadiomics features for one case (--image/--mask) or a cohort (--manifest)."""
    check_output(out, kind="file", inputs=[image, mask, manifest])
    policy = "strict" if strict_geometry else "resample"
    if manifest is not None:
        if image is not None or mask is not None:
            raise InputError("give either --manifest or --image/--mask, not both")
        if workers is not None:
            raise InputError("--workers is for one case (--image/--mask); a cohort uses --jobs")
        from gistrisk.radiomics.runs import extract_cohort

        res = extract_cohort(manifest, out, params=params, jobs=jobs, scheduler=scheduler, cache_dir=cache_dir,
                             modality=modality, geometry_policy=policy, progress=progress)
        typer.echo(res.summary())
        if res.n_failed:
            typer.echo(f"failures: {res.failures}", err=True)
            raise typer.Exit(1)
        return
    if image is None or mask is None:
        raise InputError("give --image and --mask for one case, or --manifest for a cohort")
    from gistrisk.radiomics.single import extract_single

    written = extract_single(image, mask, out, label=label, segment=segment, params=params,
                             patient_id=patient_id, modality=modality, geometry_policy=policy, workers=workers)
    typer.echo(f"{written['n_features']} features -> {out}")


ROBUSTNESS_EPILOG = """\
Examples:

  ICC of every feature under noise (10 HU) and 1.25x coarser voxels, on 30 development cases:

    gistrisk radiomics robustness --manifest dev_cases.csv --out robust.json --jobs 4

  stricter, with 2 perturbed copies of each kind per case:

    gistrisk radiomics robustness --manifest dev_cases.csv --out robust.json --threshold 0.9 --repeats 2

Each case is extracted from its CT and from perturbed copies (Gaussian noise; resampling to coarser
voxels, linear interpolation; both), and ICC(1,1) (one-way random, single measurement) is computed per
feature across cases. Writes robust.json ({"threshold", "kept", "icc", "parameters", "provenance"}) and
the per-feature table robust.csv beside it. Outcome-free: use it on development data only.
Each case is extracted 1 + 3 x repeats times; re-running skips cases already done (cache keyed by the
input files, the parameter file and the options).
Exit status: 0 done (cases that failed are listed and left out); 2 bad input or fewer than 3 usable cases.
"""


@app.command("robustness", epilog=ROBUSTNESS_EPILOG)
def robustness(
    manifest: Path = typer.Option(..., "--manifest", help="Cohort CSV: patient_id,image,mask[,label|segment]."),
    out: Path = typer.Option(..., "--out", "-o", help="Result JSON; the per-feature CSV goes beside it."),
    params: Optional[str] = typer.Option(None, "--params",
                                         help="Parameter file (YAML/JSON) or shipped name; default gist_ct_paper."),
    cases: int = typer.Option(30, "--cases", min=3, help="Cases used (a seeded subset when there are more)."),
    noise_hu: float = typer.Option(10.0, "--noise-hu", min=0.0, help="SD of the added Gaussian noise (HU)."),
    spacing_factor: float = typer.Option(1.25, "--spacing-factor", min=0.0,
                                         help="Resampled copies have this x the original voxel spacing."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Perturbed copies of each kind per case."),
    threshold: float = typer.Option(0.75, "--threshold", help="Keep features with ICC >= this."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise and of the case subset."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Local worker processes."),
    modality: str = typer.Option("CT", "--modality", help="CT checks for Hounsfield units; e.g. MR skips it."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Per-case cache (default .<stem>.cache)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Feature robustness to image perturbation (noise, coarser voxels): ICC per feature, kept list."""
    from gistrisk.radiomics.robustness_io import table_path, write_robustness
    from gistrisk.radiomics.runs import perturbation_robustness

    check_output(out, kind="file", inputs=[manifest])
    if out.suffix.lower() != ".json":
        raise InputError("output must end in .json", file=str(out))
    table = perturbation_robustness(manifest, params, n_cases=cases, noise_hu=noise_hu,
                                    spacing_factor=spacing_factor, repeats=repeats, seed=seed, jobs=jobs,
                                    modality=modality, progress=progress,
                                    cache_dir=cache_dir or out.parent / f".{out.stem}.cache")
    res = write_robustness(out, table, threshold, command="gistrisk radiomics robustness")
    n_nan = sum(v is None for v in res["icc"].values())
    typer.echo(f"kept {len(res['kept'])} of {res['n_features']} features (ICC >= {threshold:g}"
               f"{f'; {n_nan} constant, not kept' if n_nan else ''}) over {len(res['cases'])} cases "
               f"({table.attrs.get('n_cached', 0)} from cache) -> {out}, {table_path(out)}")
    for f in res["failures"]:
        typer.echo(f"left out: patient {f['patient_id']}: {f['message']}", err=True)
