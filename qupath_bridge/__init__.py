"""QuPath I/O: GeoJSON in QuPath's schema, projects through paquo, and Groovy scripts.

Public API (imported lazily so that ``import qupath_bridge`` stays cheap):

- :mod:`qupath_bridge.geojson`: ``Annotation``, ``read_annotations``, ``write_annotations``,
  ``write_tile_predictions``, ``check_bounds`` (-> ``BoundsProblem`` records), ``map_classes``
- :mod:`qupath_bridge.project`: ``read_project`` (no QuPath needed), ``read_project_annotations`` (paquo)
- :mod:`qupath_bridge.naming`: the image -> file name rule shared with the Groovy scripts
- :mod:`qupath_bridge.errors`: ``QuPathInputError`` (a ValueError), ``QuPathUnavailableError``

A leaf: nothing here imports ``gistrisk``.
- ``groovy/``: scripts pathologists run in QuPath; :func:`groovy_script` gives their paths.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

_LAZY = {
    "Annotation": "qupath_bridge.annotation",
    "read_annotations": "qupath_bridge.geojson",
    "write_annotations": "qupath_bridge.geojson",
    "write_tile_predictions": "qupath_bridge.tiles",
    "check_bounds": "qupath_bridge.bounds",
    "BoundsProblem": "qupath_bridge.bounds",
    "map_classes": "qupath_bridge.classes",
    "QuPathBridgeWarning": "qupath_bridge.warnings_",
    "QuPathBridgeError": "qupath_bridge.errors",
    "QuPathInputError": "qupath_bridge.errors",
    "QuPathUnavailableError": "qupath_bridge.errors",
    "image_base_name": "qupath_bridge.naming",
    "tile_predictions_file_name": "qupath_bridge.naming",
    "annotations_file_name": "qupath_bridge.naming",
    "file_name_clashes": "qupath_bridge.naming",
    "read_project": "qupath_bridge.project",
    "read_project_annotations": "qupath_bridge.project",
}

__all__ = [*_LAZY, "groovy_script", "GROOVY_DIR"]

GROOVY_DIR = Path(__file__).resolve().parent / "groovy"


def groovy_script(name: str) -> Path:
    """Path of a bundled Groovy script, e.g. ``groovy_script("export_annotations_geojson")``."""
    path = GROOVY_DIR / (name if name.endswith(".groovy") else name + ".groovy")
    if not path.is_file():
        known = sorted(p.stem for p in GROOVY_DIR.glob("*.groovy"))
        raise FileNotFoundError(f"no Groovy script {name!r}; bundled scripts are {known}")
    return path


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qupath_bridge' has no attribute {name!r}")
