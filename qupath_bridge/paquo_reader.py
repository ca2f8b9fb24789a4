"""Read a QuPath project's objects through paquo (the only module here that touches Java).

Imported lazily by :func:`qupath_bridge.project.read_project_annotations`; importing this module
starts paquo, which needs a QuPath install. Not run on the build machines (no QuPath there): the
tests for it skip with that reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from paquo.projects import QuPathProject  # noqa: E402  (fails here without paquo/QuPath, by design)

from qupath_bridge.annotation import Annotation
from qupath_bridge.errors import QuPathInputError
from qupath_bridge.features import feature_to_annotation
from qupath_bridge.warnings_ import QuPathBridgeWarning


def read_with_paquo(qpproj: Path, *, object_types: tuple[str, ...] = ("annotation",),
                    repair: bool = True) -> dict[str, list[Annotation]]:
    """{image name: objects} for every image of the project, opened read-only (mode "r").

    Each object is converted with QuPath's own GeoJSON writer (``to_geojson``, i.e. GsonTools) and
    parsed by the same code as a GeoJSON export. Duplicate image names get `` [entry N]`` appended.
    """
    unknown = set(object_types) - {"annotation", "detection"}
    if unknown:
        raise ValueError(f"object_types may hold 'annotation' and 'detection', got {sorted(unknown)}")
    out: dict[str, list[Annotation]] = {}
    with QuPathProject(qpproj, mode="r") as qp:
        for image in qp.images:
            h = image.hierarchy
            objs = []
            if "annotation" in object_types:
                objs += list(h.annotations)
            if "detection" in object_types:
                objs += list(h.detections)
            anns = []
            for i, obj in enumerate(objs):
                try:
                    ann = feature_to_annotation(obj.to_geojson(), i, repair=repair)
                except ValueError as e:
                    raise QuPathInputError(f"image {image.image_name!r}: {e}", file=str(qpproj)) from None
                for issue in ann.issues:
                    warnings.warn(f"file {qpproj}: image {image.image_name!r}: {issue}", QuPathBridgeWarning,
                                  stacklevel=2)
                anns.append(ann)
            name = str(image.image_name)
            if name in out:
                name = f"{name} [entry {image.entry_id}]"
            out[name] = anns
    return out
