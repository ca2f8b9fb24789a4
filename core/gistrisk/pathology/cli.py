"""`gistrisk pathology ...`: tiles, train, features, aggregate: options -> :mod:`gistrisk.pathology.runs` (and
:mod:`gistrisk.pathology.train`) -> console.

The modules that do the work are imported inside the commands: the torch-free ones (runs, tiling, stain,
manifest) add 0.6 s to `gistrisk pathology --help` and to refusing a bad option (0.06 s for this module alone,
measured), and the torch-backed ones (train, encoders) 1.5 s more, paid only once the inputs have passed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_int, check_number
from gistrisk.paths import check_output
from qupath_bridge import groovy_script

app = typer.Typer(no_args_is_help=True, help="H&E slides: tiles, tissue classifier, slide features, "
                                             "re-aggregation from stored tile embeddings.")

_BACKEND_HELP = "Slide reader: openslide, tiffslide, pil (PNG/JPEG) or auto."
_MPP_HELP = "Microns per pixel for slides that record none (a slide's recorded value is used instead)."
_MPP_OVERRIDE_HELP = ("Microns per pixel that REPLACES the value each slide records (a scan with wrong metadata); "
                      "printed as a warning and recorded in the outputs.")
_STAIN_HELP = ("Colour normalisation of each slide to a reference H&E: reinhard (LAB mean/std of tissue, "
               "so slides stained differently look alike), macenko (haematoxylin and eosin vectors and amounts "
               "estimated per slide and mapped to the reference's) or none.")


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
    from gistrisk.pathology.tiling import TileConfig

    cfg = TileConfig(tile_size=tile_size, target_mpp=target_mpp, min_tissue_fraction=min_tissue,
                     min_label_overlap=min_label_overlap)
    check_int(jobs, "--jobs", 1)
    _check_mpp_options(mpp, mpp_override)
    if slide is not None:
        if slides or manifest:
            raise InputError("give one of --slide, --slides or --manifest")
        if out.is_dir():  # as for several slides: the file is named after the slide
            out = out / f"{slide.stem}.tiles.parquet"
        elif out.suffix.lower() != ".parquet":
            raise InputError(f"--out {out}: give a .parquet file, or an existing folder to write "
                             f"{slide.stem}.tiles.parquet into")
        check_output(out, kind="file", inputs=[slide, annotations])
        if images is not None:
            check_output(images, kind="dir", option="--images")
        from gistrisk.pathology.runs import tile_single

        one = tile_single(slide, out, cfg, annotations=annotations, mpp=mpp, mpp_override=mpp_override,
                          backend=backend, repair=not no_repair, clip_annotations=clip_annotations, images=images,
                          on_message=_echo_err)
        typer.echo(one.summary())
        return
    if annotations is not None or images is not None:
        raise InputError("--annotations and --images go with --slide; for several slides use a manifest "
                         "'annotations' column")
    from gistrisk.pathology.runs import tile_cohort

    res = tile_cohort(_entries(slides, manifest), out, cfg, mpp=mpp, mpp_override=mpp_override, backend=backend,
                      repair=not no_repair, clip_annotations=clip_annotations, jobs=jobs, scheduler=scheduler,
                      on_message=_echo_err)
    typer.echo(res.summary())
    if res.n_failed:
        raise typer.Exit(1)


@app.command("train", epilog=(
    "Examples:\n\n"
    "gistrisk pathology train --tiles tiles/ --out classifier/ --weights resnet50-11ad3fa6.pth\n\n"
    "gistrisk pathology train --tiles a.tiles.parquet --tiles b.tiles.parquet --out clf/ --epochs 2 --device cpu\n\n"
    "gistrisk pathology train --tiles tiles/ --out clf_uni/ --encoder timm --encoder-weights UNI/ --freeze-encoder\n\n"
    "ImageNet weights cannot be downloaded on an offline machine: fetch torchvision's ResNet50 "
    "IMAGENET1K_V2 file elsewhere and pass it with --weights (.pth or .safetensors). Without it the "
    "network starts from random weights (fine for tests, poor for real use). Another encoder: "
    "--encoder timm:<model> with its weights file, or --encoder timm with a timm/Hugging Face folder "
    "(config.json + weights); nothing is downloaded. Recipes for UNI, Virchow2, H-optimus, Prov-GigaPath: "
    "docs/pathology_encoders.md.\n\n"
    "The tiles must hold labels of at least two classes. A class with fewer than 5 labelled tiles, or "
    "none in the validation split, is warned about (console, classifier header, provenance.json): its "
    "validation accuracy means little."))
def train(
    tiles: list[Path] = typer.Option(..., "--tiles", help="Tiles Parquet file(s) or folder(s) of them."),
    out: Path = typer.Option(..., "--out", help="Output folder for the classifier."),
    weights: Optional[Path] = typer.Option(None, "--weights", "--encoder-weights",
                                           help="Encoder start weights: ResNet50 (ImageNet) .pth/.safetensors, or "
                                                "a timm encoder's file or folder (config.json + weights)."),
    encoder: str = typer.Option("resnet50", "--encoder",
                                help="Tile encoder: resnet50 (the paper's), timm:<model> (any timm model), or timm "
                                     "(the model a --encoder-weights folder's config.json names)."),
    encoder_arg: Optional[list[str]] = typer.Option(None, "--encoder-arg",
                                                    help="KEY=VALUE passed to timm.create_model (repeatable), e.g. "
                                                         "mlp_layer=SwiGLUPacked, act_layer=silu, init_values=1e-5."),
    encoder_pool: str = typer.Option("default", "--encoder-pool",
                                     help="Tile embedding of a timm encoder: default (the model's own pooling) or "
                                          "cls+mean (class token + mean patch token, as for Virchow)."),
    freeze_encoder: bool = typer.Option(False, "--freeze-encoder",
                                        help="Train the classification head only; the encoder keeps its weights."),
    encoder_mean: Optional[str] = typer.Option(None, "--encoder-mean",
                                               help="R,G,B input mean of a timm encoder (default: its folder's "
                                                    "config.json, else timm's configuration of the model name)."),
    encoder_std: Optional[str] = typer.Option(None, "--encoder-std", help="R,G,B input std of a timm encoder."),
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
    """Train the tissue classifier on labelled tiles (the paper's ResNet50 and recipe by default)."""
    from gistrisk.pathology.stain import StainConfig, stain_config_from_reference
    from gistrisk.pathology.train_config import TrainConfig

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_output(out, kind="dir", option="--out")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction, seed=seed,
                      device=device, num_workers=workers, augment=not no_augment,
                      stain=StainConfig(method=stain_normalise), freeze_encoder=freeze_encoder)
    # the torch-backed modules only once the recipe above has passed: an impossible setting is refused at once
    from gistrisk.pathology.encoders import parse_encoder_args, parse_rgb, resolve_encoder
    from gistrisk.pathology.train import check_classes, train_classifier

    spec = resolve_encoder(encoder, weights, args=parse_encoder_args(encoder_arg), pool=encoder_pool,
                           mean=parse_rgb(encoder_mean, "--encoder-mean"), std=parse_rgb(encoder_std, "--encoder-std"))
    typer.echo(f"encoder {spec.name}: {spec.feature_dim}-d embedding, input "
               f"{spec.input_size or 'tile'} px, mean {list(spec.mean)}, std {list(spec.std)}, weights "
               f"{spec.weights or 'none (random initialisation)'}", err=True)
    if stain_reference is not None:
        cfg.stain = stain_config_from_reference(stain_normalise, stain_reference)
    df, sources, meta, files = _load_tiles(tiles)
    if int(df["label"].notna().sum()) == 0:
        raise InputError("no labelled tiles in " + ", ".join(map(str, tiles)) + " (tile with --annotations)")
    check_classes(df[df["label"].notna()], "the tiles in " + _names(files))

    def report(row: dict) -> None:
        typer.echo(f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f}, "
                   f"train acc {row['train_accuracy']:.3f}, val acc {row['val_accuracy']:.3f}", err=True)

    res = train_classifier(df, out, cfg, encoder=spec, sources=sources, tile_meta=meta, on_epoch=report,
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
    "file are refused. Every tile's embedding, class probabilities and coordinates are kept in "
    "<out stem>.embeddings/<slide_id>.h5 (HDF5 as CLAM/TRIDENT: datasets coords, features, probs), from "
    "which `gistrisk pathology aggregate` recomputes the table without the network; --no-embeddings keeps "
    "none (ResNet50: 8 KB per tile)."))
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
    decode: Optional[str] = typer.Option(None, "--decode",
                                         help="Where JPEG tiles are decoded: cpu (worker processes; default), gpu "
                                              "(in batches on the inference device; nvJPEG on CUDA) or auto (gpu on "
                                              "CUDA). Tiles the device path cannot take go the CPU path, counted."),
    compile_: bool = typer.Option(False, "--compile", help="Run the network through torch.compile."),
    jobs: int = typer.Option(1, "--jobs", help="Slides processed in parallel (local processes)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address tcp://host:port."),
    review_geojson: Optional[Path] = typer.Option(None, "--review-geojson",
                                                  help="Folder for per-tile QuPath GeoJSON predictions, named "
                                                       "as import_tile_predictions.groovy looks for them."),
    stain_normalise: Optional[str] = typer.Option(None, "--stain-normalise",
                                                  help=_STAIN_HELP + " Default: the classifier's training setting."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings",
                                              help="Folder for the per-slide tile embeddings (default: "
                                                   "<out stem>.embeddings beside --out)."),
    no_embeddings: bool = typer.Option(False, "--no-embeddings", help="Keep no per-tile embeddings."),
) -> None:
    """Slide-level pathomics: mean embedding of each slide's tumour tiles (2048-d ResNet50 by default)."""
    from gistrisk.pathology.runs import feature_cohort
    from gistrisk.pathology.tumour import FeatureConfig  # torch-free: a bad input is refused before torch loads

    check_output(out, kind="file", inputs=[classifier, slides, manifest])
    if no_embeddings and embeddings is not None:
        raise InputError("give --embeddings FOLDER or --no-embeddings, not both")
    check_int(jobs, "--jobs", 1)
    _check_mpp_options(mpp, mpp_override)
    fcfg = FeatureConfig(tumour_threshold=tumour_threshold)
    infer = {"batch_size": batch_size, "num_workers": workers, "device": device, "compile": compile_,
             **({"decode": decode} if decode is not None else {})}  # an InferenceConfig in feature_cohort
    res = feature_cohort(classifier, _entries(slides, manifest), out, mpp=mpp, mpp_override=mpp_override,
                         backend=backend, feature=fcfg, inference=infer, min_tissue=min_tissue,
                         stain_normalise=stain_normalise, review_geojson=review_geojson, jobs=jobs,
                         embeddings=False if no_embeddings else (embeddings or True),
                         scheduler=scheduler, on_message=_echo_err)
    typer.echo(res.summary())
    if review_geojson:
        typer.echo(f"{review_geojson}: tile predictions for QuPath; import them with "
                   f"{groovy_script('import_tile_predictions')} (inputDir={review_geojson})")
    if res.n_failed:
        raise typer.Exit(1)


@app.command("aggregate", epilog=(
    "Examples:\n\n"
    "gistrisk pathology aggregate --embeddings slide_features.embeddings/ --out slide_features_t07.parquet "
    "--tumour-threshold 0.7\n\n"
    "Reads the <slide_id>.h5 files `gistrisk pathology features` kept and writes the slide-feature table it "
    "would have written with this threshold (same columns, same extraction record for `gistrisk fit`), "
    "without running the network. The provenance records that it came from stored embeddings and each "
    "file's sha256. Files of different classifiers, encoders, tile grids or stain settings are refused."))
def aggregate(
    embeddings: list[Path] = typer.Option(..., "--embeddings", help="Folder(s) of <slide_id>.h5 files, or files."),
    out: Path = typer.Option(..., "--out", help="Output table (.parquet or .csv)."),
    tumour_threshold: float = typer.Option(0.5, "--tumour-threshold", help="Min tumour probability of a tile."),
) -> None:
    """Slide features from stored tile embeddings, without running the network."""
    from gistrisk.pathology.runs import aggregate_embeddings
    from gistrisk.pathology.tumour import FeatureConfig

    res = aggregate_embeddings(embeddings, out, feature=FeatureConfig(tumour_threshold=tumour_threshold),
                               on_message=_echo_err)
    typer.echo(res.summary())


def _entries(slides: Optional[Path], manifest: Optional[Path]):
    """The slides of a batch, from --slides FOLDER or --manifest CSV (--mpp / --mpp-override are applied by
    the run where an entry gives none)."""
    from gistrisk.pathology.manifest import folder_entries, read_manifest

    if (slides is None) == (manifest is None):
        raise InputError("give exactly one of --slides FOLDER or --manifest CSV (`tiles` also takes --slide FILE)")
    if manifest is not None:
        return read_manifest(manifest)
    assert slides is not None  # exactly one of the two was given
    return folder_entries(slides)


def _check_mpp_options(mpp: Optional[float], mpp_override: Optional[float]) -> None:
    for value, option in ((mpp, "--mpp"), (mpp_override, "--mpp-override")):
        if value is not None:
            check_number(value, option, low=0, low_open=True)


def _echo_err(message: str) -> None:
    typer.echo(message, err=True)


def _names(paths: list[Path], k: int = 5) -> str:
    """Up to ``k`` paths, then how many more."""
    shown = ", ".join(map(str, paths[:k]))
    return shown + (f" and {len(paths) - k} more" if len(paths) > k else "")


def _load_tiles(paths: list[Path]):
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
