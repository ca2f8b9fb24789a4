"""QuPath projects: the ``project.qpproj`` JSON (no QuPath needed) and, through paquo, their objects.

Without QuPath this reads what a project says about its images (name, URI of the slide, server
builder chain such as ``pyramidize`` -> ``uri``, size and pixel calibration when QuPath stored them,
and the ``data/<entryID>/summary.json`` object counts). The annotations themselves live in
``data.qpdata``, which is Java-serialised: only QuPath can read it, so
:func:`read_project_annotations` needs paquo and a QuPath install (optional extra ``qupath``).
Projects from QuPath 0.3.2, 0.4.1, 0.5.0-rc2 (written by paquo) and 0.6.0 are covered by tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import unquote, urlparse

from qupath_bridge.annotation import Annotation
from qupath_bridge.colors import parse_color
from qupath_bridge.errors import QuPathInputError, QuPathUnavailableError
from qupath_bridge.naming import image_base_name

# paquo (paquo.java, qupath_bridge.paquo_reader) is imported inside paquo_available and
# read_project_annotations only: it is the optional extra `qupath` and needs a QuPath install, and its
# absence must give QuPathUnavailableError naming the extra, not an ImportError on importing this module.

_MICRON_UNITS = {"µm", "μm", "um", "micron", "microns", "microm"}


@dataclass
class ProjectImage:
    """One image entry of a QuPath project.

    Attributes
    ----------
    entry_id : int
        QuPath's ``entryID``; the entry's data lives in ``data/<entry_id>/``.
    name : str
        ``imageName`` as shown in QuPath.
    uri : str or None
        The slide's URI as stored (innermost builder), e.g. ``file:/C:/slides/a%20b.svs``.
    server_path : str or None
        That URI as a local path of the machine that wrote it ("C:/slides/a b.svs"); None if not a file URI.
    builder_types : tuple of str
        Server builder chain from outside in, e.g. ("pyramidize", "uri").
    provider : str or None
        Java class of the image server builder (OpenSlide, Bio-Formats, ImageJ ...).
    args : list of str
    width, height : int or None
        Full-resolution size, when the project stored server metadata.
    mpp : float or None
        Microns per pixel (pixel width), when stored in microns.
    levels : list of dict
        Pyramid levels ({downsample, width, height}) when stored.
    metadata : dict
        The entry's key-value metadata; ``tags`` its tags.
    data_dir : Path or None
        ``<project>/data/<entry_id>`` when it exists.
    summary : dict
        ``summary.json`` (object counts by type and class) when present.
    """

    entry_id: int
    name: str
    uri: str | None
    server_path: str | None
    builder_types: tuple[str, ...]
    provider: str | None
    args: list[str] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    mpp: float | None = None
    levels: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    randomized_name: str | None = None
    data_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        """True when QuPath saved objects for this image (``data.qpdata`` exists)."""
        return self.data_dir is not None and (self.data_dir / "data.qpdata").is_file()

    def object_counts(self) -> dict[str, int]:
        """Object counts by type from ``summary.json`` ({"Annotations": 7, ...}; {} if not saved)."""
        counts = self.summary.get("hierarchy", {}).get("objectTypeCounts", {})
        return {str(k): int(v) for k, v in counts.items() if k != "Root objects"}


@dataclass
class QuPathProjectInfo:
    """A parsed ``project.qpproj``: version, images and project classes."""

    path: Path
    version: str | None
    uri: str | None
    images: list[ProjectImage]
    classes: list[tuple[str, tuple[int, int, int] | None]] = field(default_factory=list)
    orphan_data_dirs: list[Path] = field(default_factory=list)

    def image(self, name: str) -> ProjectImage:
        """The entry called ``name``: exactly, else by the base name the Groovy export gives its GeoJSON
        (``naming.image_base_name``), so a file stem maps back to its image; QuPathInputError if none."""
        for match in (lambda im: im.name == name, lambda im: image_base_name(im.name) == name,
                      lambda im: image_base_name(im.name) == image_base_name(name)):
            found = [im for im in self.images if match(im)]
            if found:
                return found[0]
        raise QuPathInputError(f"no image named {name!r} in the project ({len(self.images)} images)",
                               file=str(self.path))


def uri_to_path(uri: str | None) -> str | None:
    """A ``file:`` URI as QuPath writes it -> the path on the machine that wrote it, else None.

    ``file:/C:/a%20b.svs`` -> ``C:/a b.svs``; ``file:///D:/x.tif`` -> ``D:/x.tif``;
    ``file:/Volumes/x`` -> ``/Volumes/x``; ``file://server/share/x`` -> ``//server/share/x``.
    """
    if not uri:
        return None
    p = urlparse(uri)
    if p.scheme != "file":
        return None
    path = unquote(p.path)
    if p.netloc and p.netloc not in ("", "localhost"):
        path = f"//{p.netloc}{path}"  # UNC share
    if len(path) >= 3 and path[0] == "/" and path[2] == ":" and path[1].isalpha():
        path = path[1:]
    return path


def _builder_chain(sb: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]:
    """Follow nested ``builder`` members to the innermost one; return (types, innermost, outer metadata)."""
    types: list[str] = []
    outer_meta = sb.get("metadata") or {}
    node = sb
    while True:
        types.append(str(node.get("builderType", "uri" if "uri" in node else "unknown")))
        inner = node.get("builder")
        if not isinstance(inner, dict):
            break
        node = inner
    return tuple(types), node, outer_meta


def _mpp(meta: dict[str, Any]) -> float | None:
    pw = (meta.get("pixelCalibration") or {}).get("pixelWidth") or {}
    unit, value = str(pw.get("unit", "")).strip(), pw.get("value")
    if unit.casefold() in {u.casefold() for u in _MICRON_UNITS} and isinstance(value, (int, float)) and value > 0:
        return float(value)
    return None


def _entry(e: dict[str, Any], project_dir: Path | None, file: str) -> ProjectImage:
    sb = e.get("serverBuilder")
    if not isinstance(sb, dict):
        raise QuPathInputError(f"image entry {e.get('entryID')} ({e.get('imageName')!r}) has no serverBuilder",
                               file=file)
    types, inner, outer_meta = _builder_chain(sb)
    meta = outer_meta or inner.get("metadata") or {}
    entry_id = int(e.get("entryID", -1))
    data_dir = project_dir / "data" / str(entry_id) if project_dir is not None else None
    summary: dict[str, Any] = {}
    if data_dir is not None and (data_dir / "summary.json").is_file():
        try:
            summary = json.loads((data_dir / "summary.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            summary = {}
    uri = inner.get("uri")
    name = e.get("imageName") or meta.get("name") or (Path(uri_to_path(uri) or "").name if uri else "")
    return ProjectImage(
        entry_id=entry_id,
        name=str(name),
        uri=str(uri) if uri else None,
        server_path=uri_to_path(uri),
        builder_types=types,
        provider=inner.get("providerClassName"),
        args=[str(a) for a in inner.get("args") or []],
        width=meta.get("width"),
        height=meta.get("height"),
        mpp=_mpp(meta),
        levels=list(meta.get("levels") or []),
        metadata=dict(e.get("metadata") or {}),
        tags=[str(t) for t in e.get("tags") or []],
        randomized_name=e.get("randomizedName"),
        data_dir=data_dir if data_dir is not None and data_dir.is_dir() else None,
        summary=summary,
    )


def _project_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "project.qpproj"
    if not p.is_file():
        raise QuPathInputError("QuPath project file not found (give project.qpproj or its folder)", file=str(p))
    return p


def read_project(path: str | os.PathLike) -> QuPathProjectInfo:
    """Parse a QuPath project (0.2-0.6) without QuPath.

    Parameters
    ----------
    path : path
        ``project.qpproj`` or the folder holding it. A lone ``.qpproj`` (no ``data/``) is accepted.

    Raises
    ------
    QuPathInputError
        Naming the file: missing, not JSON, no ``images`` list, or an entry without a server builder.
    """
    qp = _project_file(path)
    file = str(qp)
    try:
        doc = json.loads(qp.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as e:
        raise QuPathInputError(f"cannot be read ({e})", file=file) from None
    except json.JSONDecodeError as e:
        raise QuPathInputError(f"is not a QuPath project: not valid JSON (line {e.lineno}: {e.msg})",
                               file=file) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise QuPathInputError("is not a QuPath project: no 'images' list", file=file)
    project_dir = qp.parent if (qp.parent / "data").is_dir() else None
    images = [_entry(e, project_dir, file) for e in doc["images"] if isinstance(e, dict)]
    orphans: list[Path] = []
    if project_dir is not None:
        ids = {str(im.entry_id) for im in images}
        orphans = sorted(d for d in (project_dir / "data").iterdir() if d.is_dir() and d.name not in ids)
    return QuPathProjectInfo(path=qp, version=doc.get("version"), uri=doc.get("uri"), images=images,
                             classes=_classes(qp.parent / "classifiers" / "classes.json"),
                             orphan_data_dirs=orphans)


def _classes(path: Path) -> list[tuple[str, tuple[int, int, int] | None]]:
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise QuPathInputError(f"project classes file is not valid JSON ({e})", file=str(path)) from None
    return [(str(c.get("name")), parse_color(c.get("color"))) for c in doc.get("pathClasses", [])
            if isinstance(c, dict) and c.get("name") is not None]


def locate_image(image: ProjectImage, search_dirs: Sequence[str | os.PathLike] = ()) -> Path | None:
    """Find the slide on this machine: its stored path if it exists, else its file name in ``search_dirs``.

    Projects move between machines (QuPath asks the user to relocate images); this does the same by name.
    """
    if image.server_path and Path(image.server_path).is_file():
        return Path(image.server_path)
    if image.server_path:
        sp = image.server_path
        fname = (PureWindowsPath(sp) if ":" in sp[:3] or "\\" in sp else PurePosixPath(sp)).name
    else:
        fname = image.name
    for d in search_dirs:
        cand = Path(d) / fname
        if cand.is_file():
            return cand
    return None


def paquo_available() -> bool:
    """True when paquo imports and finds a QuPath install."""
    try:
        import paquo.java  # noqa: F401, PLC0415  (optional; starts the JVM; fails without QuPath)
    except Exception:  # noqa: BLE001  paquo raises several kinds when QuPath is missing
        return False
    return True


def read_project_annotations(path: str | os.PathLike, *, object_types: tuple[str, ...] = ("annotation",),
                             repair: bool = True) -> dict[str, list[Annotation]]:
    """Every image's objects, read through paquo (needs paquo and a QuPath install).

    The project is opened read-only (paquo mode "r"); objects go through QuPath's own GeoJSON
    writer and then :func:`qupath_bridge.features.feature_to_annotation`, so they come out exactly
    as from a GeoJSON export.

    Parameters
    ----------
    path : path
        ``project.qpproj`` or its folder.
    object_types : tuple of str
        Any of "annotation", "detection" (includes tiles and cells).
    repair : bool

    Returns
    -------
    dict
        {image name: [Annotation, ...]}.

    Raises
    ------
    QuPathUnavailableError
        When paquo or QuPath is missing (with what to install).
    """
    try:
        from qupath_bridge.paquo_reader import read_with_paquo  # noqa: PLC0415 - optional (paquo and QuPath)
    except Exception as e:  # noqa: BLE001  ImportError without paquo; paquo's own errors without QuPath
        raise QuPathUnavailableError(
            "reading QuPath objects from a project needs paquo and a QuPath install "
            f"(pip install 'slicergistrisk[qupath]'; then set PAQUO_QUPATH_DIR): {e}. "
            "Without QuPath, export GeoJSON with qupath_bridge/groovy/export_annotations_geojson.groovy"
        ) from None
    return read_with_paquo(_project_file(path), object_types=object_types, repair=repair)
