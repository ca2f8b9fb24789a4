"""The QuPath file-name contract: one GeoJSON per image, named after the QuPath image name.

The Groovy scripts apply the same rule (tests parse their regexes); QuPath names an image after its
slide file, so gistrisk names review files from the slide file's name. Names that differ only in
case count as the same file (Windows and macOS file systems); such clashes are refused on both
sides, never overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# The same two regular expressions as `baseNameOf = { ... name.replaceAll(...).replaceAll(...) }` in
# groovy/export_annotations_geojson.groovy and groovy/import_tile_predictions.groovy (tests check).
STRIP_EXTENSION = r"\.[^.]*$"
UNSAFE_CHARS = r"[^A-Za-z0-9._ -]"
ANNOTATIONS_SUFFIX = ".geojson"
TILE_PREDICTIONS_SUFFIX = ".tiles.geojson"
RULE = ("the image (slide file) name without its last extension, every character other than a letter, "
        "digit, '.', '_', '-' or space replaced by '_', case ignored")


@dataclass(frozen=True)
class NameClash:
    """Images whose files would share ``file_name``: their positions in the input and their names."""

    file_name: str
    indices: tuple[int, ...]
    image_names: tuple[str, ...]


def image_base_name(image_name: str) -> str:
    """QuPath image name -> file base name: last extension dropped, unsafe characters -> "_".

    "CMU-1-Small-Region.svs" -> "CMU-1-Small-Region"; "HE (1).svs" -> "HE _1_".
    """
    return re.sub(UNSAFE_CHARS, "_", re.sub(STRIP_EXTENSION, "", image_name))


def annotations_file_name(image_name: str) -> str:
    """Name of the file export_annotations_geojson.groovy writes for ``image_name``."""
    return image_base_name(image_name) + ANNOTATIONS_SUFFIX


def tile_predictions_file_name(image_name: str) -> str:
    """Name import_tile_predictions.groovy looks for (default ``fileSuffix``) for ``image_name``."""
    return image_base_name(image_name) + TILE_PREDICTIONS_SUFFIX


def file_name_clashes(image_names: Sequence[str], suffix: str = TILE_PREDICTIONS_SUFFIX) -> list[NameClash]:
    """Groups of images whose files (base name + ``suffix``, case ignored) would be one file.

    Returns [] when every name gives its own file; the groups are in order of first appearance.
    """
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(image_names):
        groups.setdefault((image_base_name(name) + suffix).lower(), []).append(i)
    return [NameClash(image_base_name(image_names[ix[0]]) + suffix, tuple(ix), tuple(image_names[i] for i in ix))
            for ix in groups.values() if len(ix) > 1]
