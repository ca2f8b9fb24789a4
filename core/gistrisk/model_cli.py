"""`gistrisk fit`, `validate`, `predict` and `harmonise`: the survival core from the command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from gistrisk.atomic import write_json, write_table
from gistrisk.clinical.dictionary import load_dictionary
from gistrisk.errors import InputError
from gistrisk.extraction import check_tables, read_extraction
from gistrisk.harmonise.site import estimate_sites, harmonise_tables, read_site_file, write_site_file
from gistrisk.paths import check_output
from gistrisk.provenance import provenance
from gistrisk.radiomics.params import params_sha256, shipped_param_files
from gistrisk.radiomics.phantom import phantom_features
from gistrisk.report.cohort_report import write_cohort_report
from gistrisk.report.patient_batch import write_patient_reports
from gistrisk.survival.config import MIN_BOOTSTRAP, load_config
from gistrisk.survival.model import MultimodalRiskModel, nan_to_null
from gistrisk.survival.train import fit_multimodal
from gistrisk.survival.validate import score_distribution
from gistrisk.survival.validate import validate as run_validate
from gistrisk.tables import load_features, load_outcomes, parse_modality_args

ModalityOpt = Annotated[list[str], typer.Option("--modality", "-m", metavar="NAME=TABLE",
                                                help="A modality's feature table (CSV/Parquet keyed by patient_id); "
                                                     "repeat for each modality, e.g. -m clinical=clinical.csv")]
TimeUnitOpt = Annotated[Optional[str], typer.Option(
    help="Unit of the outcomes' time column: months, days, weeks or years (converted to months). Without it "
         "times are taken as months and follow-up that looks like days (median > 120) is refused")]
MismatchOpt = Annotated[bool, typer.Option(
    "--allow-extraction-mismatch", help="Go on when a feature table was extracted with other settings than the "
                                        "model's training table (another parameter file, PyRadiomics version, "
                                        "classifier, tile size, mpp or stain normalisation); every result is flagged")]
SiteFileOpt = Annotated[Optional[Path], typer.Option(
    "--site-file", help="Site file from `gistrisk harmonise` for the hospital/scanner these cases come from: their "
                        "features are mapped onto the development cohort's (reference-site ComBat) before scoring")]
DictionaryOpt = Annotated[Optional[list[Path]], typer.Option(
    "--clinical-dictionary", help="Your own clinical dictionary YAML (synonyms, units, variables) added to the "
                                  "packaged one (gistrisk/clinical/dictionary.yaml); repeatable")]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", force=True)
    for noisy in ("distributed", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load_tables(paths: dict[str, Path], dictionary) -> dict:
    return {name: load_features(path, name, dictionary) for name, path in paths.items()}


def fit(
    outcomes: Annotated[Path, typer.Option(help="Outcomes table: patient_id,time,event (months; 1 = recurrence/death)")],
    modality: ModalityOpt,
    out: Annotated[Path, typer.Option(help="Model bundle folder to write (model.json)")],
    config: Annotated[Optional[Path], typer.Option(help="YAML fit settings (see gistrisk/configs/fit_default.yaml)")] = None,
    jobs: Annotated[Optional[int], typer.Option(help="Worker processes (overrides the config's n_jobs)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (overrides the config's seed)")] = None,
    time_unit: TimeUnitOpt = None,
    clinical_dictionary: DictionaryOpt = None,
) -> None:
    """Fit per-modality selection + Cox models and the late-fusion Cox on out-of-fold scores.

    Example: gistrisk fit --outcomes outcomes.csv -m clinical=clinical.csv -m radiomics=radiomics.parquet
    -m pathology=slide_features.parquet --out model/
    """
    _setup_logging()
    paths = parse_modality_args(modality)
    check_output(out, kind="dir", inputs=[outcomes, config, *paths.values(), *(clinical_dictionary or [])])
    over = {k: v for k, v in (("n_jobs", jobs), ("seed", seed)) if v is not None}
    cfg = load_config(config, over)
    dictionary = load_dictionary(clinical_dictionary or ())
    y = load_outcomes(outcomes, time_unit)
    tables = _load_tables(paths, dictionary)
    console = Console(stderr=True)
    with console.status(f"fitting {len(tables)} modalities x {cfg.fusion.oof_folds + 1} pipelines ..."):
        model = fit_multimodal(tables, y, cfg, progress=lambda msg: console.log(msg))
    model.info_["inputs"] = {"outcomes": str(outcomes), **{m: df.attrs.get("source") for m, df in tables.items()},
                             "config": str(config) if config else None, "time_unit": y.attrs["time_unit"]}
    model.info_["extraction"] = {m: read_extraction(p) for m, p in paths.items()}
    _record_phantom(model.info_["extraction"].get("radiomics"))
    model.info_["clinical_dictionary"] = {**dictionary.record(), "report": tables["clinical"].attrs.get(
        "dictionary_report") if "clinical" in tables else None}
    model.save(out)
    _print_metrics(model.cv_metrics_, "cross-validated on the development cohort")
    _print_development_checks(model)
    typer.echo(f"fusion: {model.main_fusion.formula()}")
    typer.echo(f"model bundle written to {out / 'model.json'}")


def validate(
    model: Annotated[Path, typer.Option(help="Model bundle folder from `gistrisk fit`")],
    outcomes: Annotated[Path, typer.Option(help="Outcomes table of the cohort: patient_id,time,event")],
    modality: ModalityOpt,
    out: Annotated[Path, typer.Option(help="Report folder to write (metrics.json, predictions.csv)")],
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for confidence intervals")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed")] = 0,
    report: Annotated[bool, typer.Option(help="Also write the HTML cohort report (report.html)")] = True,
    time_unit: TimeUnitOpt = None,
    harmonise: Annotated[Optional[str], typer.Option(
        "--harmonise", metavar="SITE_FILE|auto",
        help="Also score the cohort with its features harmonised to the development cohort (reference-site "
             "ComBat): a site file from `gistrisk harmonise`, or `auto` to estimate it from this cohort's own "
             "features (never its outcomes). Frozen and harmonised results are reported side by side")] = None,
    clinical_dictionary: DictionaryOpt = None,
    allow_extraction_mismatch: MismatchOpt = False,
) -> None:
    """Score a cohort with a frozen model and write every model's C-index (95% CI), log-rank p, td-AUC.

    Example: gistrisk validate --model model/ --outcomes ext/outcomes.csv -m clinical=ext/clinical.csv
    -m radiomics=ext/radiomics.parquet -m pathology=ext/slide_features.parquet --out report/
    """
    _setup_logging()
    paths = parse_modality_args(modality)
    site_file = Path(harmonise) if harmonise not in (None, "auto") else None
    check_output(out, kind="dir", inputs=[model, outcomes, *paths.values(), *(clinical_dictionary or []), site_file])
    if bootstrap < MIN_BOOTSTRAP:
        raise InputError(f"--bootstrap must be at least {MIN_BOOTSTRAP} (resamples for the 95% intervals), "
                         f"got {bootstrap}")
    m = MultimodalRiskModel.load(model)
    mismatch = check_tables(m.info_.get("extraction"), paths, allow_mismatch=allow_extraction_mismatch)
    dictionary = _bundle_dictionary(m, clinical_dictionary)
    y = load_outcomes(outcomes, time_unit)
    tables = {k: v.reset_index() for k, v in _load_tables(paths, dictionary).items()}
    site = _validation_site(m, tables, harmonise) if harmonise else None  # a bad site file: refused before any work
    metrics, pred = run_validate(m, tables, y, bootstrap=bootstrap, seed=seed)
    harmonised = _validate_harmonised(m, tables, y, *site, bootstrap, seed) if site else None
    out.mkdir(parents=True, exist_ok=True)
    if mismatch:
        pred["warnings"] = " | ".join(mismatch)
    write_json(out / "metrics.json", nan_to_null({"metrics": metrics, "development_cv": m.cv_metrics_,
                                                  "score_distribution": score_distribution(m, pred),
                                                  "harmonised": harmonised and {k: v for k, v in harmonised.items()
                                                                                if k != "predictions"},
                                                  "extraction_warnings": mismatch,
                                      "provenance": provenance({"bootstrap": bootstrap, "seed": seed,
                                                                "time_unit": y.attrs["time_unit"],
                                                                "harmonise": harmonise,
                                                                "clinical_dictionary": dictionary.record()},
                                                               model=str(model), outcomes=str(outcomes))}),
               allow_nan=False)
    write_table(out / "predictions.csv", pred)
    _warn_out_of_distribution(pred)
    _print_metrics(metrics, "on this cohort, frozen model")
    if harmonised:
        write_table(out / "predictions_harmonised.csv", harmonised["predictions"])
        _print_metrics(harmonised["metrics"], f"on this cohort, features harmonised ({harmonised['source']})")
        for mod, d in harmonised["score_distribution"].items():
            before = score_distribution(m, pred).get(mod, {})
            typer.echo(f"  {mod} score SD {before.get('sd', float('nan')):.2f} -> {d['sd']:.2f} (development out of "
                       f"fold {d['development_sd_out_of_fold'] or float('nan'):.2f}); outside the development "
                       f"1st-99th percentiles: {before.get('outside_development_p01_p99')} -> "
                       f"{d['outside_development_p01_p99']} of {d['n']}")
    typer.echo(f"metrics written to {out / 'metrics.json'}")
    if report:
        path = write_cohort_report(out / "report.html", model=m, metrics=metrics, predictions=pred, outcomes=y,
                                   clinical=tables.get("clinical"), bootstrap=bootstrap, validation_seed=seed,
                                   harmonised=harmonised and {**harmonised, "frozen_distribution":
                                                              score_distribution(m, pred)})
        typer.echo(f"report written to {path}")


def predict(
    model: Annotated[Path, typer.Option(help="Model bundle folder from `gistrisk fit`")],
    modality: ModalityOpt,
    out: Annotated[Path, typer.Option(help="Predictions CSV to write")],
    report_dir: Annotated[Optional[Path], typer.Option(help="Also write one HTML report per patient here")] = None,
    site_file: SiteFileOpt = None,
    clinical_dictionary: DictionaryOpt = None,
    allow_extraction_mismatch: MismatchOpt = False,
) -> None:
    """Predict per patient: unimodal scores, fused risk, risk group and RFS at 12/36/60 months.

    A patient missing a modality is predicted from those present when the model has a fusion for
    them, and flagged `partial`.
    Example: gistrisk predict --model model/ -m clinical=new/clinical.csv -m radiomics=new/radiomics.csv --out pred.csv
    """
    _setup_logging()
    paths = parse_modality_args(modality)
    inputs = [model, *paths.values(), *(clinical_dictionary or []), site_file]
    check_output(out, kind="file", inputs=inputs)
    if report_dir is not None:
        check_output(report_dir, kind="dir", inputs=inputs, option="--report-dir")
    m = MultimodalRiskModel.load(model)
    mismatch = check_tables(m.info_.get("extraction"), paths, allow_mismatch=allow_extraction_mismatch)
    dictionary = _bundle_dictionary(m, clinical_dictionary)
    tables = {k: v.reset_index() for k, v in _load_tables(paths, dictionary).items()}
    tables, harmonisation = _harmonised(m, tables, site_file)
    pred = m.predict(tables)
    pred["harmonisation"] = harmonisation
    if mismatch:
        pred["warnings"] = " | ".join(mismatch)
    imputed = m.imputed_inputs(tables)
    pred["imputed"] = pred["patient_id"].map(imputed).fillna("")
    for mod in m.modalities_:
        if mod not in tables:
            logging.warning("modality %r not given: predictions use the other modalities and are flagged partial", mod)
    part = pred.loc[pred["partial"] & pred["risk"].notna(), "patient_id"].tolist()
    if part:
        logging.warning("%d patient(s) lack a modality and were predicted from those present (flagged partial): %s",
                        len(part), ", ".join(part[:10]))
    _warn_out_of_distribution(pred)
    gaps = pred.loc[pred["imputed"] != "", "patient_id"].tolist()
    if gaps:
        logging.warning("%d patient(s) have empty model inputs, imputed with the training median/mode (column "
                        "'imputed' says which): %s", len(gaps), ", ".join(gaps[:10]))
    none = pred.loc[pred["risk"].isna(), "patient_id"].tolist()
    write_table(out, pred)
    if report_dir:
        write_patient_reports(report_dir, model=m, tables=tables, harmonisation=harmonisation)
        typer.echo(f"per-patient reports written to {report_dir}")
    typer.echo(f"{len(pred)} predictions ({int(pred['partial'].sum())} partial) written to {out}")
    if none:
        # a batch with patients it could not predict is not a success (as radiomics/pathology batches)
        typer.secho(f"error: {len(none)} patient(s) could not be predicted (no modality the model can fuse; their "
                    f"risk is empty in {out}): {', '.join(none[:10])}", err=True, fg="red")
        raise typer.Exit(1)


def harmonise(
    model: Annotated[Path, typer.Option(help="Model bundle folder from `gistrisk fit`")],
    out: Annotated[Path, typer.Option(help="Site file to write (JSON)")],
    modality: Annotated[Optional[list[str]], typer.Option(
        "--modality", "-m", metavar="NAME=TABLE", help="The site's feature table(s), e.g. -m radiomics=siteB.csv "
                                                       "(and -m clinical=... for covariates)")] = None,
    site: Annotated[Optional[str], typer.Option(
        help="Name of the site (hospital, scanner or protocol) these cases come from")] = None,
    development_site: Annotated[Optional[str], typer.Option(
        help="Instead: the site file of one of the development cohort's sites (fitted with `harmonisation: "
             "site_column`), for new patients of that site")] = None,
    clinical_dictionary: DictionaryOpt = None,
    allow_extraction_mismatch: MismatchOpt = False,
) -> None:
    """Estimate how a site's features differ from the development cohort's and write a site file.

    Reference-site ComBat: from a batch of the site's cases (features only, never outcomes; at least the
    bundle's min_site_cases), each feature's location and scale at this site, shrunk by empirical Bayes.
    `predict` and `validate` then take --site-file, one patient at a time if need be. Give the clinical
    table too when the model keeps covariates (e.g. tumour size).
    Example: gistrisk harmonise --model model/ -m radiomics=siteB/radiomics.csv --site "Hospital B" --out siteB.json
    """
    _setup_logging()
    if (development_site is None) == (not modality or site is None):
        raise InputError("give either the site's tables and its name (-m radiomics=TABLE --site NAME) or "
                         "--development-site NAME")
    paths = parse_modality_args(modality or [])
    check_output(out, kind="file", inputs=[model, *paths.values(), *(clinical_dictionary or [])])
    m = MultimodalRiskModel.load(model)
    if development_site is not None:
        adjustments = development_sites(m, development_site)
        write_site_file(out, m.info_, adjustments, provenance({"development_site": development_site},
                                                              model=str(model)))
        typer.echo(f"site file of development site {development_site!r} written to {out}")
        return
    assert site is not None  # checked above
    mismatch = check_tables(m.info_.get("extraction"), paths, allow_mismatch=allow_extraction_mismatch)
    tables = _load_tables(paths, _bundle_dictionary(m, clinical_dictionary))
    adjustments = estimate_sites(m.info_, tables, site)
    write_site_file(out, m.info_, adjustments, provenance(
        {"site": site, "extraction_warnings": mismatch}, model=str(model),
        **{f"features_{k}": str(v) for k, v in paths.items()}))
    for name, a in adjustments.items():
        typer.echo(f"{name}: {len(a.features)} features, {a.n_cases} cases of site {site!r}; median |location shift| "
                   f"{float(np.median(np.abs(a.gamma))):.2f} SD, median scale {float(np.median(np.sqrt(a.delta))):.2f}x "
                   "the development cohort's")
    typer.echo(f"site file written to {out}")


def development_sites(model, name: str) -> dict:
    """The adjustments the final pipelines fitted for development site ``name`` (the reference site: none)."""
    fitted = {m: p.sites_ for m, p in model.pipelines_.items() if getattr(p, "sites_", None) is not None}
    if not fitted:
        raise InputError("this model was fitted without several development sites (harmonisation.site_column)")
    out = {}
    for m, h in fitted.items():
        if name == h.reference_site_:
            raise InputError(f"{name!r} is the development reference site: its patients need no site file")
        if name not in h.sites_:
            raise InputError(f"no development site {name!r}; the model's are "
                             f"{', '.join([h.reference_site_, *sorted(h.sites_)])}")
        out[m] = h.sites_[name]
    return out


def _validation_site(m, tables: dict, harmonise: str) -> tuple[dict, str]:
    """The site adjustments ``validate --harmonise`` uses, and where they come from."""
    if harmonise == "auto":
        return (estimate_sites(m.info_, tables, "validation cohort"),
                "auto: estimated from this cohort's own features, not its outcomes")
    return read_site_file(harmonise, m.info_), f"site file {harmonise}"


def _validate_harmonised(m, tables: dict, y, adjustments: dict, source: str, bootstrap: int, seed: int) -> dict:
    """The cohort scored again with harmonised features: metrics, predictions, score distribution."""
    metrics, pred = run_validate(m, harmonise_tables(m.info_, tables, adjustments), y, bootstrap=bootstrap, seed=seed)
    pred["harmonisation"] = f"site {next(iter(adjustments.values())).site}"
    return {"method": (m.info_.get("harmonisation") or {}).get("method"), "source": source,
            "site": next(iter(adjustments.values())).site, "modalities": sorted(adjustments),
            "n_cases": {k: a.n_cases for k, a in adjustments.items()}, "metrics": metrics,
            "score_distribution": score_distribution(m, pred), "predictions": pred}


def _harmonised(model, tables: dict, site_file: Path | None) -> tuple[dict, str]:
    """The tables mapped with a site file, and what each prediction says about harmonisation."""
    if site_file is None:
        if (model.info_.get("harmonisation") or {}).get("references"):
            return tables, "none (no site file: features as extracted, not harmonised to the development cohort)"
        return tables, "none"
    adjustments = read_site_file(site_file, model.info_)
    site = next(iter(adjustments.values())).site
    typer.echo(f"harmonising {', '.join(adjustments)} features to the development cohort with site {site!r} "
               f"({site_file})")
    return harmonise_tables(model.info_, tables, adjustments), f"site {site} ({Path(site_file).name})"


def _warn_out_of_distribution(pred) -> None:
    """Say on the console which patients have a score or input outside the development range."""
    far = pred.loc[pred["out_of_distribution"] != "", ["patient_id", "out_of_distribution"]]
    if len(far):
        logging.warning("%d patient(s) have a score or model input outside the development cohort's range (the model "
                        "extrapolates; column 'out_of_distribution'): %s", len(far),
                        " | ".join(f"{r.patient_id}: {r.out_of_distribution}" for r in far.head(5).itertuples()))


def _record_phantom(record: dict | None) -> None:
    """Store the phantom's features extracted with the training parameter file, so that Slicer can
    check numerically that its PyRadiomics computes what training computed."""
    if not record:
        return
    path: Path | None  # None: no parameter file here matches the record
    path = Path(record.get("params_path") or "")
    if not path.is_file() or params_sha256(path) != record["params_sha256"]:
        shipped = shipped_param_files().get(Path(record["params_file"]).stem)
        path = shipped if shipped is not None and params_sha256(shipped) == record["params_sha256"] else None
    if path is None:
        logging.warning("radiomics: the parameter file the features were extracted with (%s, sha256 %s...) is not "
                        "here; no phantom record, so the Slicer module cannot check its PyRadiomics numerically",
                        record["params_file"], record["params_sha256"][:12])
        return
    record["phantom"] = phantom_features(path)


def _bundle_dictionary(model, extra):
    """The clinical dictionary the model was fitted with (its recorded extensions), plus ``extra``."""
    return load_dictionary(extra or (), record=model.info_.get("clinical_dictionary"))


def _print_development_checks(model) -> None:
    """Same-patient comparison, selection comparison, proportional hazards and fallbacks, on the console."""
    cv = model.cv_metrics_
    same = cv.get("same_patients_as_fusion") or {}
    if same:
        n = same.get("fusion", {}).get("n")
        typer.echo(f"  on the {n} patients with every modality: " +
                   ", ".join(f"{k} C={v['c_index']:.3f}" for k, v in same.items()))
    for m, r in (cv.get("selection_comparison") or {}).items():
        typer.echo(f"  selection, {m} (out-of-fold C): " + ", ".join(
            f"{k} {v['c_index']:.3f}" + (" (used)" if k == r["configured"] else "")
            for k, v in r.items() if isinstance(v, dict)))
    for m, r in (cv.get("proportional_hazards") or {}).items():
        if r.get("violated_at_0.05"):
            typer.secho(f"warning: proportional hazards doubtful for {m}: "
                        f"{', '.join(r['violated_at_0.05'])} (Schoenfeld test p < 0.05)", err=True, fg="yellow")
    for m, why in (model.info_.get("no_signal") or {}).items():
        typer.secho(f"warning: modality {m} carries no signal and is not in the fusion: {why}", err=True, fg="yellow")


def _print_metrics(metrics: dict, title: str) -> None:
    typer.echo(f"C-index {title}:")
    for name, v in metrics.items():
        if isinstance(v, dict) and "not_evaluated" in v:
            typer.echo(f"  {name:<26} not evaluated: {v['not_evaluated']}")
        if isinstance(v, dict) and "c_index" in v:
            lo, hi = v["c_index_ci"]
            lr = f", log-rank p={v['logrank_p']:.3g}" if "logrank_p" in v else ""
            typer.echo(f"  {name:<26} C={v['c_index']:.3f} (95% CI {lo:.3f}-{hi:.3f}), n={v['n']}, events={v['events']}{lr}")
