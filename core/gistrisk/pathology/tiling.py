"""A non-overlapping tile grid at a target resolution, filtered by tissue, labelled by annotation overlap.

Tiles are kept as coordinates (level-0 x, y, size), never as images: one table per slide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_int, check_number
from gistrisk.pathology.slides import LevelChoice, Slide
from gistrisk.pathology.tissue import NoTissueError, TissueConfig, box_fractions, tissue_mask

TILE_COLUMNS = ["slide_id", "slide", "x", "y", "size0", "level", "read_size", "tile_size",
                "tissue_fraction", "label", "label_overlap"]


@dataclass
class TileConfig:
    """How a slide is cut into tiles.

    tile_size: output tile side (px) at ``target_mpp``; target_mpp: microns per pixel of a tile
    (paper: 20x, ~0.5); min_tissue_fraction: unlabelled tiles with less tissue are dropped;
    min_label_overlap: fraction of a tile an annotation class must cover to label it;
    thumbnail_px_per_tile: thumbnail resolution for tissue detection (px per tile side).
    """

    tile_size: int = 224
    target_mpp: float = 0.5
    min_tissue_fraction: float = 0.5
    min_label_overlap: float = 0.5
    thumbnail_px_per_tile: int = 8
    tissue: TissueConfig = field(default_factory=TissueConfig)

    def __post_init__(self) -> None:
        check_int(self.tile_size, "--tile-size", 1)
        check_number(self.target_mpp, "--target-mpp", low=0, low_open=True)
        check_number(self.min_tissue_fraction, "--min-tissue", low=0, high=1)
        check_number(self.min_label_overlap, "--min-label-overlap", low=0, high=1, low_open=True)
        check_int(self.thumbnail_px_per_tile, "thumbnail_px_per_tile", 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TileConfig:
        d = dict(d)
        d["tissue"] = TissueConfig(**d.get("tissue", {}))
        return cls(**d)


def grid(slide: Slide, config: TileConfig) -> tuple[LevelChoice, np.ndarray]:
    """Every full tile of the grid -> (level choice, (N, 2) int64 level-0 top-left x, y).

    Tiles are laid at the chosen level with stride ``read_size``; partial tiles at the right and
    bottom edges are dropped.
    """
    choice = slide.choose_level(config.target_mpp, config.tile_size)
    lw, lh = slide.level_dimensions[choice.level]
    nx, ny = lw // choice.read_size, lh // choice.read_size
    if nx == 0 or ny == 0:
        raise InputError(f"slide ({slide.dimensions[0]}x{slide.dimensions[1]} px at {slide.mpp:.4g} um/px) is "
                         f"smaller than one {config.tile_size}-px tile at {config.target_mpp} um/px",
                         file=str(slide.path))
    iy, ix = np.mgrid[0:ny, 0:nx]
    step0 = choice.read_size * choice.downsample
    xy = np.stack([np.round(ix.ravel() * step0), np.round(iy.ravel() * step0)], axis=1).astype(np.int64)
    return choice, xy


def tile_slide(slide: Slide, config: TileConfig | None = None, *, annotations: Sequence | None = None,
               annotations_file: str | None = None, slide_id: str | None = None,
               require_labels: bool = True) -> pd.DataFrame:
    """Tile a slide: grid, tissue fraction, labels.

    Parameters
    ----------
    annotations : objects with ``geometry`` (shapely, level-0 px) and ``class_name`` (already mapped
        to the classifier's classes); areas only.
    require_labels : with annotations, raise if none of them labels any tile.

    Returns
    -------
    DataFrame with :data:`TILE_COLUMNS`, one row per kept tile: tiles with at least
    ``min_tissue_fraction`` tissue, plus every labelled tile (a "background" annotation labels
    glass). ``attrs["gistrisk"]`` holds the slide geometry and config.
    """
    cfg = config or TileConfig()
    choice, xy = grid(slide, cfg)
    size0 = choice.size0
    boxes = np.concatenate([xy, xy + size0], axis=1)
    thumb_ds = max(1.0, size0 / cfg.thumbnail_px_per_tile)
    thumb = slide.thumbnail(thumb_ds)
    mask = tissue_mask(thumb, cfg.tissue, px_per_tile=size0 * thumb.shape[1] / slide.dimensions[0])
    if not mask.any():
        raise NoTissueError("no tissue detected on the slide thumbnail (blank, out-of-focus or glass only)",
                            file=str(slide.path))
    # thumbnail px -> level-0 px scale per axis can differ slightly by rounding; use the x scale
    scale = slide.dimensions[0] / mask.shape[1]
    tissue = box_fractions(mask, boxes, scale)
    labels = np.full(len(xy), None, dtype=object)
    overlap = np.zeros(len(xy))
    if annotations is not None:
        labels, overlap = label_tiles(boxes, annotations, cfg.min_label_overlap)
        if require_labels and not any(lbl is not None for lbl in labels):
            raise InputError(
                f"none of the {len(annotations)} annotations covers at least {cfg.min_label_overlap:.0%} of any "
                f"full {cfg.tile_size}-px tile at {cfg.target_mpp} um/px ({size0} px at level 0); draw larger "
                "regions, lower --min-label-overlap, or check the annotations belong to this slide",
                file=annotations_file or str(slide.path))
    keep = (tissue >= cfg.min_tissue_fraction) | np.array([lbl is not None for lbl in labels], bool)
    if not keep.any():
        raise NoTissueError(f"no tile has at least {cfg.min_tissue_fraction:.0%} tissue "
                            f"(tissue covers {mask.mean():.1%} of the thumbnail)", file=str(slide.path))
    sid = slide_id or slide.path.stem
    df = pd.DataFrame({
        "slide_id": sid,
        "slide": str(slide.path),
        "x": xy[keep, 0], "y": xy[keep, 1],
        "size0": np.int64(size0), "level": np.int32(choice.level), "read_size": np.int32(choice.read_size),
        "tile_size": np.int32(cfg.tile_size),
        "tissue_fraction": tissue[keep].astype(np.float32),
        "label": pd.array(labels[keep], dtype="string"),
        "label_overlap": overlap[keep].astype(np.float32),
    }, columns=TILE_COLUMNS)
    df.attrs["gistrisk"] = {
        "slide": str(slide.path), "slide_id": sid, "backend": slide.backend,
        "width": slide.dimensions[0], "height": slide.dimensions[1],
        "mpp": slide.mpp, "mpp_source": slide.mpp_source, "mpp_recorded": slide.mpp_recorded,
        "mpp_unused": slide.mpp_unused, "effective_mpp": choice.effective_mpp,
        "n_grid": int(len(xy)), "n_kept": int(keep.sum()), "tissue_fraction_slide": float(mask.mean()),
        "config": cfg.to_dict(), "annotations": annotations_file,
    }
    return df


def label_tiles(boxes: np.ndarray, annotations: Sequence, min_overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """Label each box by the annotation class covering most of it.

    boxes: (N, 4) level-0 [x0, y0, x1, y1]. Annotations of one class are merged first, so
    overlapping drawings are not counted twice. Returns (labels (N,) object, None where no class
    covers ``min_overlap``; overlap (N,) float, fraction of the tile covered by that class).
    """
    n = len(boxes)
    by_class: dict[str, list] = {}
    for a in annotations:
        if a.class_name is None or a.geometry.is_empty or a.geometry.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        by_class.setdefault(a.class_name, []).append(a.geometry)
    classes = sorted(by_class)
    parts, part_class = [], []
    for ci, c in enumerate(classes):
        merged = shapely.union_all(by_class[c])
        for g in shapely.get_parts(merged):
            if g.area > 0:
                parts.append(g)
                part_class.append(ci)
    cover = np.zeros((n, max(1, len(classes))))
    if parts:
        tiles = shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3])
        tree = STRtree(parts)
        ti, pi = tree.query(tiles, predicate="intersects")
        areas = shapely.area(shapely.intersection(tiles[ti], np.asarray(parts, dtype=object)[pi]))
        np.add.at(cover, (ti, np.asarray(part_class)[pi]), areas)
        cover /= shapely.area(tiles)[:, None]
    best = cover.argmax(axis=1)
    frac = cover[np.arange(n), best]
    labels = np.full(n, None, dtype=object)
    hit = frac >= min_overlap
    labels[hit] = np.asarray(classes, dtype=object)[best[hit]] if classes else None
    return labels, np.where(hit, frac, cover.max(axis=1))


def read_tiles_table(path: str | Path) -> pd.DataFrame:
    """Read a tiles Parquet written by :func:`write_tiles_table`; clear error if it is not one."""
    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise InputError(f"cannot read tiles table ({type(e).__name__}: {e})", file=str(path)) from e
    missing = [c for c in TILE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"not a tiles table: missing columns {missing}", file=str(path))
    return df
