"""Map the class names pathologists typed in QuPath onto the classes a model knows."""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections import Counter
from collections.abc import Sequence

from qupath_bridge.annotation import Annotation
from qupath_bridge.errors import QuPathInputError
from qupath_bridge.warnings_ import QuPathBridgeWarning

#: The one class-alias table (gistrisk.pathology uses it too): other names pathologists give the paper's
#: tissue classes. Keys are in :func:`normalise_class` form, so "Tumor_Tissue" and "tumour tissue" both
#: match; an alias applies only when its target is one of the known classes.
DEFAULT_ALIASES: dict[str, str] = {
    "tumour tissue": "tumour",
    "muscle": "smooth muscle",
    "muscularis": "smooth muscle",
    "muscularis propria": "smooth muscle",
    "smoothmuscle": "smooth muscle",
    "necrotic": "necrosis",
    "bg": "background",
}


def normalise_class(name: str) -> str:
    """Case-, space-, underscore- and spelling-insensitive key: "Smooth_Muscle" -> "smooth muscle",
    "Tumor" -> "tumour"."""
    words = name.casefold().replace("_", " ").replace("-", " ").split()
    return " ".join("tumour" if w == "tumor" else w for w in words)


def map_classes(annotations: Sequence[Annotation], known: Sequence[str], aliases: dict[str, str] | None = None,
                *, file: str | None = None, strict: bool = True) -> list[Annotation]:
    """Rename each annotation's class to the matching entry of ``known``.

    Matching ignores case, underscores, hyphens, repeated spaces and tumour/tumor spelling; ``aliases``
    (added to :data:`DEFAULT_ALIASES`) map other names. A derived class ("Tumor: Positive") whose full
    name is unknown maps to its base class. Unclassified objects stay unclassified.

    Parameters
    ----------
    annotations : sequence of Annotation
    known : sequence of str
        The model's classes, in the spelling to return.
    aliases : dict, optional
        Extra {name in QuPath: known class}.
    file : str, optional
        The GeoJSON the annotations came from, named in messages.
    strict : bool
        Raise on an unknown class (default); if False, unknown classes become unclassified with a warning.

    Returns
    -------
    list of Annotation
        New objects (the inputs are not changed).

    Raises
    ------
    QuPathInputError
        With ``strict``, naming the file, each unknown class, its count and the nearest known class.
    """
    by_key = {normalise_class(k): k for k in known}
    alias_keys: dict[str, str] = {}
    for src, dst in {**DEFAULT_ALIASES, **(aliases or {})}.items():
        dst_key = normalise_class(dst)
        if dst_key in by_key:
            alias_keys[normalise_class(src)] = by_key[dst_key]
        elif aliases and src in aliases:
            raise ValueError(f"alias {src!r} -> {dst!r}: {dst!r} is not one of the known classes {list(known)}")

    def lookup(name: str) -> str | None:
        key = normalise_class(name)
        return by_key.get(key) or alias_keys.get(key)

    out: list[Annotation] = []
    unknown: Counter[str] = Counter()
    for ann in annotations:
        if ann.class_name is None:
            out.append(dataclasses.replace(ann, issues=list(ann.issues)))
            continue
        target = lookup(ann.class_name)
        issues = list(ann.issues)
        if target is None and ": " in ann.class_name:
            target = lookup(ann.class_name.split(": ")[0])
            if target is not None:
                issues.append(f"derived class {ann.class_name!r} mapped to its base class {target!r}")
        if target is None:
            unknown[ann.class_name] += 1
            issues.append(f"unknown class {ann.class_name!r}; left unclassified")
        out.append(dataclasses.replace(ann, class_name=target, issues=issues))
    if unknown:
        msg = _unknown_message(unknown, known)
        if strict:
            raise QuPathInputError(msg, file=file)
        warnings.warn(f"{file or 'annotations'}: {msg}; those objects are left unclassified",
                      QuPathBridgeWarning, stacklevel=2)
    return out


def _unknown_message(unknown: Counter[str], known: Sequence[str]) -> str:
    parts = []
    for name, n in sorted(unknown.items()):
        close = difflib.get_close_matches(normalise_class(name), [normalise_class(k) for k in known], n=1)
        hint = f"; did you mean {next(k for k in known if normalise_class(k) == close[0])!r}?" if close else ""
        parts.append(f"{name!r} ({n} object{'s' if n != 1 else ''}{hint})")
    return (f"unknown class{'es' if len(unknown) > 1 else ''} " + ", ".join(parts)
            + f"; known classes are {list(known)} (fix the class in QuPath or pass an alias)")
