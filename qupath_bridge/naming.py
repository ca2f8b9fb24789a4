"""File names shared with the Groovy scripts: one GeoJSON per image, named after the image."""

from __future__ import annotations

import re

# The same two regular expressions as `baseName = imageName.replaceAll(...).replaceAll(...)` in
# groovy/export_annotations_geojson.groovy and groovy/import_tile_predictions.groovy (a test checks).
STRIP_EXTENSION = r"\.[^.]*$"
UNSAFE_CHARS = r"[^A-Za-z0-9._ -]"
ANNOTATIONS_SUFFIX = ".geojson"
TILE_PREDICTIONS_SUFFIX = ".tiles.geojson"


def image_base_name(image_name: str) -> str:
    """QuPath image name -> file base name: last extension dropped, unsafe characters -> "_".

    "CMU-1-Small-Region.svs" -> "CMU-1-Small-Region"; "a/b:c.tif" -> "a_b_c".
    """
    return re.sub(UNSAFE_CHARS, "_", re.sub(STRIP_EXTENSION, "", image_name))


def annotations_file_name(image_name: str) -> str:
    """Name of the file export_annotations_geojson.groovy writes for ``image_name``."""
    return image_base_name(image_name) + ANNOTATIONS_SUFFIX


def tile_predictions_file_name(image_name: str) -> str:
    """Name import_tile_predictions.groovy looks for (default ``fileSuffix``) for ``image_name``."""
    return image_base_name(image_name) + TILE_PREDICTIONS_SUFFIX
