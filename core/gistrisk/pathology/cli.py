"""`gistrisk pathology ...`: tiles, train, features. Heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_int, check_number
from gistrisk.paths import check_output
from qupath_bridge import groovy_script
from qupath_bridge.naming import RULE, file_name_clashes, tile_predictions_file_name

app = typer.Typer(no_args_is_help=True, help="H&E slides: tiles, tissue classifier, slide features.")

_BACKEND_HELP = "Slide reader: openslide, tiffslide, pil (PNG/JPEG) or auto."
_MPP_HELP = "Microns per pixel for slides that record none (a slide's recorded value is used instead)."
_MPP_OVERRIDE_HELP = ("Microns per pixel that REPLACES the value each slide records (a scan with wrong metadata); "
                      "printed as a warning and recorded in the outputs.")
_STAIN_HELP = ("Colour normalisation of each slide to a reference H&E: reinhard (LAB mean/std of tissue, "
               "so slides stained differently look alike) or none.")


@app.command("tiles", epilog=(
    "Examples:\n\n"
    "gistrisk pathology tiles --slide S1.svs --out S1.tiles.parquet\n\n"
    "gistrisk pathology tiles --slide S1.svs --annotations S1.geojson --out S1.tiles.parquet\n\n"
    "gistrisk pathology tiles --manifest slides.csv --out tiles/ --jobs 4\n\n"
    "Manifest columns: patient_id,slide[,slide_id,annotations,mpp,mpp_override] (paths relative to the CSV; "
    "mpp fills a slide without mpp metadata, mpp_override replaces it). "
    "One slide: --out is a .parquet file, or an existing folder to write <slide stem>.tiles.parquet into. "
    "Several slides: one <slide_id>.tiles.parquet each in --out, failures in tiles.failures.csv "
    "(exit code 1), finished slides cached for a re-run."))
def tiles(
    slide: Optional[Path] = typer.Option(None, "--slide", help="One slide file."),
    slides: Optional[Path] = typer.Option(None, "--slides", help="A folder of slides."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="CSV manifest of slides."),
    out: Path = typer.Option(..., "--out", help="Parquet file or existing folder (one slide); folder (several)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="QuPath GeoJSON for --slide."),
    mpp: Optional[float] = typer.Option(None, "--mpp", help=_MPP_HELP),
    mpp_override: Optional[float] = typer.Option(None, "--mpp-override", help=_MPP_OVERRIDE_HELP),
    backend: str = typer.Option("auto", "--backend", help=_BACKEND_HELP),
    tile_size: int = typer.Option(224, "--tile-size", help="Tile side in px at --target-mpp."),
    target_mpp: float = typer.Option(0.5, "--target-mpp", help="Tile resolution (0.5 ~ 20x)."),
    min_tissue: float = typer.Option(0.5, "--min-tissue", help="Min tissue fraction of an unlabelled tile."),
    min_label_overlap: float = typer.Option(0.5, "--min-label-overlap",
                                            help="Min fraction of a tile an annotation class must cover."),
    no_repair: bool = typer.Option(False, "--no-repair", help="Invalid polygons are errors, not repaired."),
    clip_annotations: bool = typer.Option(False, "--clip-annotations",
                                          help="Clip annotations extending past the slide edge."),
    images: Optional[Path] = typer.Option(None, "--images", help="Also save each tile as PNG here (one slide; "
                                          "for inspection, off by default)."),
    jobs: int = typer.Option(1, "--jobs", help="Parallel local processes (several slides)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address tcp://host:port."),
) -> None:
    """Cut slides into tiles (coordinates only), keep tissue, label from QuPath annotations."""
    from gistrisk.atomic import write_json, write_table
    from gistrisk.pathology.pipeline import tile_one
    from gistrisk.pathology.slides import mpp_message
    from gistrisk.pathology.tiling import TileConfig
    from gistrisk.provenance import provenance

    cfg = TileConfig(tile_size=tile_size, target_mpp=target_mpp, min_tissue_fraction=min_tissue,
                     min_label_overlap=min_label_overlap)
    check_int(jobs, "--jobs", 1)
    _check_mpp_options(mpp, mpp_override)
    params = {"tile_config": cfg.to_dict(), "backend": backend, "repair": not no_repair,
              "clip_annotations": clip_annotations}
    if slide is not None:
        if slides or manifest:
            raise InputError("give one of --slide, --slides or --manifest")
        if out.is_dir():  # as for several slides: the file is named after the slide
            out = out / f"{slide.stem}.tiles.parquet"
        elif out.suffix.lower() != ".parquet":
            raise InputError(f"--out {out}: give a .parquet file, or an existing folder to write "
                             f"{slide.stem}.tiles.parquet into")
        if images is not None:
            check_output(images, kind="dir", option="--images")
        df = tile_one(slide, cfg, annotations=annotations, mpp=mpp, backend=backend,
                      repair=not no_repair, clip_annotations=clip_annotations, mpp_override=mpp_override)
        meta = df.attrs["gistrisk"]
        _echo_mpp(mpp_message(str(slide), meta))
        write_table(out, df)
        write_json(_beside(out, ".provenance.json"),
                   provenance({**params, "mpp": mpp, "mpp_override": mpp_override}, slide=str(slide),
                              annotations=str(annotations) if annotations else None, summary=meta))
        if images is not None:
            from gistrisk.pathology.pipeline import save_tile_images

            save_tile_images(df, images, backend=backend, mpp=mpp, mpp_override=mpp_override)
        labelled = int(df["label"].notna().sum())
        typer.echo(f"{out}: {len(df)} tiles kept of {meta['n_grid']} in the grid"
                   + (f", {labelled} labelled ({_counts(df)})" if annotations else ""))
        return
    if annotations is not None or images is not None:
        raise InputError("--annotations and --images go with --slide; for several slides use a manifest "
                         "'annotations' column")
    from gistrisk.batch import BatchItem, cache_path, file_fingerprint, run_batch
    from gistrisk.pathology.cohort import failure_rows, slide_fingerprint

    entries = _entries(slides, manifest, mpp, mpp_override)
    check_output(out, kind="dir", option="--out")
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for e in entries:
        dest = out / f"{e.slide_id}.tiles.parquet"
        inputs = {"slide": e.slide, "slide_id": e.slide_id, "annotations": e.annotations, "mpp": e.mpp,
                  "mpp_override": e.mpp_override, "out": str(dest), **params}
        fp = file_fingerprint(*([e.annotations] if e.annotations else []),
                              params={**inputs, "slide_fp": slide_fingerprint(e.slide)})
        if not dest.exists():  # output deleted since: do not trust the cache
            cache_path(out / ".cache", e.slide_id).unlink(missing_ok=True)
        items.append(BatchItem(e.slide_id, inputs, fp))
    from gistrisk.pathology.pipeline import tiles_worker

    res = run_batch(items, tiles_worker, cache_dir=out / ".cache", jobs=jobs, scheduler=scheduler, desc="slides")
    by_id = {e.slide_id: e for e in entries}
    for sid, r in res.done.items():
        _echo_mpp(mpp_message(by_id[sid].slide, r))
    write_table(out / "tiles.failures.csv", failure_rows(res.failures, by_id))
    write_json(out / "tiles.provenance.json", provenance(params, slides=[e.__dict__ for e in entries],
                                                        results=res.done, failures=len(res.failures)))
    typer.echo(f"{out}: {len(res.done)} slides tiled ({res.skipped_cached} from cache), {len(res.failures)} failed"
               + (f" (see {out / 'tiles.failures.csv'})" if res.failures else ""))
    if res.failures:
        raise typer.Exit(1)


@app.command("train", epilog=(
    "Examples:\n\n"
    "gistrisk pathology train --tiles tiles/ --out classifier/ --weights resnet50-11ad3fa6.pth\n\n"
    "gistrisk pathology train --tiles a.tiles.parquet --tiles b.tiles.parquet --out clf/ --epochs 2 --device cpu\n\n"
    "ImageNet weights cannot be downloaded on an offline machine: fetch torchvision's ResNet50 "
    "IMAGENET1K_V2 file elsewhere and pass it with --weights (.pth or .safetensors). Without it the "
    "network starts from random weights (fine for tests, poor for real use).\n\n"
    "The tiles must hold labels of at least two classes. A class with fewer than 5 labelled tiles, or "
    "none in the validation split, is warned about (console, classifier header, provenance.json): its "
    "validation accuracy means little."))
def train(
    tiles: List[Path] = typer.Option(..., "--tiles", help="Tiles Parquet file(s) or folder(s) of them."),
    out: Path = typer.Option(..., "--out", help="Output folder for the classifier."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="ResNet50 start weights (ImageNet)."),
    epochs: int = typer.Option(30, "--epochs"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(1e-4, "--lr"),
    val_fraction: float = typer.Option(0.3, "--val-fraction"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    workers: int = typer.Option(-1, "--workers", help="Tile-decoding processes (-1 = automatic)."),
    no_augment: bool = typer.Option(False, "--no-augment", help="No random rotations/flips."),
    stain_normalise: str = typer.Option("reinhard", "--stain-normalise", help=_STAIN_HELP),
    stain_reference: Optional[Path] = typer.Option(None, "--stain-reference",
                                                   help="H&E image whose colours are the target (default: "
                                                        "built-in H&E target)."),
) -> None:
    """Train the ResNet50 tissue classifier on labelled tiles (paper recipe by default)."""
    import logging

    from gistrisk.pathology.stain import StainConfig, read_reference
    from gistrisk.pathology.train import TrainConfig, check_classes, train_classifier

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_output(out, kind="dir", option="--out")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction, seed=seed,
                      device=device, num_workers=workers, augment=not no_augment,
                      stain=StainConfig(method=stain_normalise))
    if stain_reference is not None:
        mean, std = read_reference(stain_reference)
        cfg.stain = StainConfig(method=stain_normalise, target_mean=mean, target_std=std)
    df, sources, meta, files = _load_tiles(tiles)
    if int(df["label"].notna().sum()) == 0:
        raise InputError("no labelled tiles in " + ", ".join(map(str, tiles)) + " (tile with --annotations)")
    check_classes(df[df["label"].notna()], "the tiles in " + _names(files))

    def report(row: dict) -> None:
        typer.echo(f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f}, "
                   f"train acc {row['train_accuracy']:.3f}, val acc {row['val_accuracy']:.3f}", err=True)

    res = train_classifier(df, out, cfg, weights=weights, sources=sources, tile_meta=meta, on_epoch=report,
                           on_warning=lambda w: typer.echo(f"warning: {w}", err=True))
    typer.echo(f"{out / 'classifier.safetensors'}: best epoch {res.best_epoch}, "
               f"validation accuracy {res.best_val_accuracy:.3f}; class balance {res.class_balance}")


@app.command("features", epilog=(
    "Examples:\n\n"
    "gistrisk pathology features --classifier clf/ --slides wsi/ --out slide_features.parquet\n\n"
    "gistrisk pathology features --classifier clf/ --manifest slides.csv --out feats.parquet --jobs 4\n\n"
    "gistrisk pathology features --classifier clf/ --manifest slides.csv --out feats.parquet "
    "--scheduler tcp://host:8786\n\n"
    "Re-running resumes: finished slides are read from <out stem>.cache/. Failed slides are listed in "
    "<out stem>.failures.csv (exit code 1); slides without tumour tiles get NaN features, flag "
    "'no_tumour_tiles' and a line in the failures file. --out is the table file, not a folder. "
    "--review-geojson writes one <slide file name without extension>.tiles.geojson per slide (characters "
    "other than letters, digits, '.', '_', '-' and space become '_'), the name "
    "qupath_bridge/groovy/import_tile_predictions.groovy looks for; slides whose names give the same "
    "file are refused."))
def features(
    classifier: Path = typer.Option(..., "--classifier", help="Classifier folder (or its .safetensors)."),
    slides: Optional[Path] = typer.Option(None, "--slides", help="A folder of slides."),
    manifest: Optional[Path] = typer.Option(None, "--manifest",
                                            help="CSV: patient_id,slide[,slide_id,mpp,mpp_override]."),
    out: Path = typer.Option(..., "--out", help="Output table (.parquet or .csv)."),
    mpp: Optional[float] = typer.Option(None, "--mpp", help=_MPP_HELP),
    mpp_override: Optional[float] = typer.Option(None, "--mpp-override", help=_MPP_OVERRIDE_HELP),
    backend: str = typer.Option("auto", "--backend", help=_BACKEND_HELP),
    tumour_threshold: float = typer.Option(0.5, "--tumour-threshold", help="Min tumour probability of a tile."),
    min_tissue: float = typer.Option(0.5, "--min-tissue", help="Min tissue fraction of a tile."),
    batch_size: int = typer.Option(64, "--batch-size"),
    workers: int = typer.Option(-1, "--workers", help="Tile-decoding processes per slide (-1 = automatic)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    jobs: int = typer.Option(1, "--jobs", help="Slides processed in parallel (local processes)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address tcp://host:port."),
    review_geojson: Optional[Path] = typer.Option(None, "--review-geojson",
                                                  help="Folder for per-tile QuPath GeoJSON predictions, named "
                                                       "as import_tile_predictions.groovy looks for them."),
    stain_normalise: Optional[str] = typer.Option(None, "--stain-normalise",
                                                  help=_STAIN_HELP + " Default: the classifier's training setting."),
) -> None:
    """Slide-level pathomics: mean 2048-d ResNet50 feature of each slide's tumour tiles."""
    import pandas as pd

    from gistrisk.atomic import write_json, write_table
    from gistrisk.batch import BatchItem, cache_path, file_fingerprint, run_batch
    from gistrisk.pathology.cohort import failure_rows, slide_fingerprint
    from gistrisk.pathology.engine import InferenceConfig
    from gistrisk.pathology.features import FLAG_NO_TUMOUR, FeatureConfig, features_table
    from gistrisk.pathology.model import load_classifier
    from gistrisk.pathology.pipeline import MPP_KEYS, features_worker, torch_threads_per_job
    from gistrisk.pathology.slides import mpp_message
    from gistrisk.pathology.stain import resolve_stain
    from gistrisk.pathology.tiling import TileConfig
    from gistrisk.provenance import file_sha256, provenance

    check_output(out, kind="file", inputs=[classifier, slides, manifest])
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"--out {out}: give a .parquet or .csv file")
    if review_geojson:
        check_output(review_geojson, kind="dir", option="--review-geojson")
    check_int(jobs, "--jobs", 1)
    _check_mpp_options(mpp, mpp_override)
    fcfg = FeatureConfig(tumour_threshold=tumour_threshold)
    infer = InferenceConfig(batch_size=batch_size, num_workers=workers, device=device).to_dict()
    clf_file = classifier / "classifier.safetensors" if classifier.is_dir() else classifier
    _, header = load_classifier(clf_file)  # fail fast on a bad classifier, before the batch
    clf_hash = file_sha256(clf_file)
    stain, stain_warning = resolve_stain(header.get("stain"), stain_normalise)
    if stain_warning:
        typer.echo(f"warning: {stain_warning}", err=True)
    tcfg = TileConfig(tile_size=header["tile_size"], target_mpp=float(header["mpp"]), min_tissue_fraction=min_tissue)
    entries = _entries(slides, manifest, mpp, mpp_override)
    review_names = _review_file_names(entries) if review_geojson else {}
    params = {"classifier_sha256": clf_hash, "tile_config": tcfg.to_dict(), "feature": fcfg.to_dict(),
              "backend": backend, "stain": stain.to_dict()}
    if review_geojson:
        review_geojson.mkdir(parents=True, exist_ok=True)
    cache = out.with_name(out.stem + ".cache")
    items = []
    for e in entries:
        geo = str(review_geojson / review_names[e.slide_id]) if review_geojson else None
        inputs = {"slide": e.slide, "slide_id": e.slide_id, "patient_id": e.patient_id, "mpp": e.mpp,
                  "mpp_override": e.mpp_override, "classifier": str(clf_file.resolve()), "inference": infer,
                  "review_geojson": geo,
                  "torch_threads": torch_threads_per_job(jobs) if (jobs > 1 and not scheduler) else None,
                  **params}
        fp_params = {k: v for k, v in inputs.items() if k not in ("inference", "torch_threads", "classifier")}
        fp_params["slide_fp"] = slide_fingerprint(e.slide)
        if geo and not Path(geo).exists():  # review file deleted since: recompute
            cache_path(cache, e.slide_id).unlink(missing_ok=True)
        items.append(BatchItem(e.slide_id, inputs, file_fingerprint(params=fp_params)))
    res = run_batch(items, features_worker, cache_dir=cache, jobs=jobs, scheduler=scheduler, desc="slides")
    by_id = {e.slide_id: e for e in entries}
    results = list(res.done.values())
    for sid, r in res.done.items():
        _echo_mpp(mpp_message(by_id[sid].slide, r))
    table = features_table(results)
    write_table(out, table)
    fails = failure_rows(res.failures, by_id)
    flagged = [{"slide_id": r["slide_id"], "patient_id": r["patient_id"], "slide": by_id[r["slide_id"]].slide,
                "error_type": FLAG_NO_TUMOUR,
                "message": f"no tile predicted tumour with probability >= {tumour_threshold} among "
                           f"{r['n_tiles']} tissue tiles; features left empty (NaN)"}
               for r in results if r.get("flag") == FLAG_NO_TUMOUR]
    fails = pd.concat([fails, pd.DataFrame(flagged, columns=fails.columns)], ignore_index=True)
    write_table(_beside(out, ".failures.csv"), fails)
    write_json(_beside(out, ".provenance.json"),
               provenance({**params, "inference": infer}, classifier=str(clf_file),
                          classifier_header={k: v for k, v in header.items() if k != "versions"},
                          slides=[e.__dict__ for e in entries],
                          slide_mpp={sid: {k: r.get(k) for k in MPP_KEYS} for sid, r in res.done.items()},
                          n_done=len(results),
                          n_failed=len(res.failures), n_no_tumour=len(flagged), skipped_cached=res.skipped_cached))
    typer.echo(f"{out}: {len(results)} slides ({res.skipped_cached} from cache), {len(flagged)} without tumour "
               f"tiles, {len(res.failures)} failed" + (f" (see {_beside(out, '.failures.csv')})" if len(fails) else ""))
    if review_geojson:
        typer.echo(f"{review_geojson}: tile predictions for QuPath; import them with "
                   f"{groovy_script('import_tile_predictions')} (inputDir={review_geojson})")
    if res.failures:
        raise typer.Exit(1)


def _review_file_names(entries) -> dict[str, str]:
    """{slide_id: review GeoJSON file name}, by the QuPath rule from the slide file's name (QuPath's image
    name). Slides whose names give one file are refused: the file could not say which slide it is."""
    names = [Path(e.slide).name for e in entries]
    clashes = file_name_clashes(names)
    if clashes:
        listed = "; ".join(" and ".join(entries[i].slide for i in c.indices) + f" would both be {c.file_name}"
                           for c in clashes[:5])
        raise InputError(f"--review-geojson: {listed}{' ...' if len(clashes) > 5 else ''}. The QuPath import "
                         f"script finds a slide's file by {RULE}; rename the slide files so the names differ")
    return {e.slide_id: tile_predictions_file_name(n) for e, n in zip(entries, names)}


def _beside(out: Path, suffix: str) -> Path:
    """``dir/name.parquet`` -> ``dir/name<suffix>``."""
    return out.with_name(out.stem + suffix)


def _counts(df) -> str:
    return ", ".join(f"{k} {v}" for k, v in df["label"].value_counts().items())


def _entries(slides: Optional[Path], manifest: Optional[Path], mpp: Optional[float],
             mpp_override: Optional[float]):
    """The slides of a batch; --mpp / --mpp-override apply where the manifest gives no value."""
    from gistrisk.pathology.cohort import folder_entries, read_manifest

    if (slides is None) == (manifest is None):
        raise InputError("give exactly one of --slides FOLDER or --manifest CSV (`tiles` also takes --slide FILE)")
    if manifest is not None:
        entries = read_manifest(manifest)
        for e in entries:
            e.mpp = e.mpp if e.mpp is not None else mpp
            e.mpp_override = e.mpp_override if e.mpp_override is not None else mpp_override
        return entries
    return folder_entries(slides, mpp, mpp_override)


def _check_mpp_options(mpp: Optional[float], mpp_override: Optional[float]) -> None:
    for value, option in ((mpp, "--mpp"), (mpp_override, "--mpp-override")):
        if value is not None:
            check_number(value, option, low=0, low_open=True)


def _echo_mpp(message: Optional[str]) -> None:
    if message:
        typer.echo(message, err=True)


def _names(paths: List[Path], k: int = 5) -> str:
    """Up to ``k`` paths, then how many more."""
    shown = ", ".join(map(str, paths[:k]))
    return shown + (f" and {len(paths) - k} more" if len(paths) > k else "")


def _load_tiles(paths: List[Path]):
    """Tiles tables (files or folders) -> (one DataFrame, {slide: SlideSource}, {tile_size, mpp}, files)."""
    import pandas as pd

    from gistrisk.pathology.data import SlideSource
    from gistrisk.pathology.tiling import read_tiles_table

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(p.glob("*.tiles.parquet")) or sorted(p.glob("*.parquet"))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("tiles file or folder not found", file=str(p))
    if not files:
        raise InputError("no tiles Parquet files in " + ", ".join(map(str, paths)))
    frames, sources, metas = [], {}, set()
    for f in files:
        df = read_tiles_table(f)
        meta = df.attrs.get("gistrisk", {})
        cfg = meta.get("config", {})
        metas.add((int(df["tile_size"].iloc[0]) if len(df) else cfg.get("tile_size"), cfg.get("target_mpp")))
        if meta.get("slide"):
            # the mpp the slide was tiled at opens a slide that records none (given or overridden)
            sources[meta["slide"]] = SlideSource(meta["slide"], meta.get("backend", "auto"),
                                                 meta.get("mpp") if meta.get("mpp_source") != "metadata" else None)
        frames.append(df)
    if len(metas) != 1:
        raise InputError(f"tiles tables disagree on (tile size, mpp): {sorted(metas, key=str)}; "
                         "tile every slide with the same --tile-size and --target-mpp")
    (size, mpp), = metas
    return pd.concat(frames, ignore_index=True), sources, {"tile_size": size, "mpp": mpp}, files
