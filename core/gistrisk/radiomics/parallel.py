"""One case's image types spread over processes, with the features PyRadiomics' ``execute`` gives.

PyRadiomics' ``RadiomicsFeatureExtractor.execute`` (3.1) resamples and checks the image and mask once,
computes diagnostics and shape, then loops over the enabled image types (original, wavelet sub-bands,
LoG sigmas, other filters), computing every feature class on each derived image. The derived images
are independent, so here the calling process does the first part as ``execute`` does, then it and
``workers - 1`` child processes share out *units*: shape, one image type, one LoG sigma, or a few
wavelet sub-bands (each such unit recomputes the one cheap wavelet transform). Results are merged in
``execute``'s order: same keys, same order, bit-identical values, PyRadiomics' warnings in the order a
sequential run logs them, and its "Calculating features for ..." progress records in this process.

Children start before the preprocessing (fork on Linux, spawn elsewhere). Meanwhile the first one
computes the diagnostics of the input image and mask (with fork it has them already; on a full CT
they cost as much as the resampling) and each warms the modules PyRadiomics imports on a filter's first
use. Children take units from the heavy end of a shared list, the calling process from the light end,
so nobody waits on a slow start; a filter whose first-use imports only the children have warmed is left
to them (for a bounded time) while this process imports those modules for its next call. If children
cannot start, or one exits, the calling process does the rest itself; the returned info says so.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import logging
import multiprocessing as mp
import multiprocessing.spawn
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import radiomics
import SimpleITK as sitk
from radiomics import featureextractor, generalinfo, imageoperations

#: PyRadiomics versions whose ``execute`` this module mirrors (checked by tests/radiomics/test_radiomics_parallel.py).
VERIFIED_PYRADIOMICS = ("v3.1.", "3.1.")

#: Most processes chosen automatically: beyond this the largest unit (LBP3D's filter) bounds the time.
AUTO_MAX_WORKERS = 4

#: Relative cost of the units (one derived image ~ 1), for the order in which they are handed out.
_FILTER_COST = {"LBP3D": 6.0, "LBP2D": 1.0, "LoG": 0.6, "Gradient": 0.2, "Wavelet": 0.5}
_IMAGES_PER_TYPE = {"LBP3D": 3}

#: Modules PyRadiomics imports on the first use of a filter (0.2-0.9 s cold): warmed in the children, and
#: imported in the calling process only while it waits on them.
_LAZY_IMPORTS = {"LBP3D": ("scipy.stats", "scipy.ndimage", "scipy.special", "trimesh.creation"),
                 "LBP2D": ("scipy.ndimage", "skimage.feature")}

_UNHASHED = "original-unhashed"  # PyRadiomics hashes only under "original"
SHAPE = "shape"  # the unit computing the shape features (before the image types, as in ``execute``)
_LOG = logging.getLogger("radiomics.featureextractor")  # the logger (and messages) of PyRadiomics' execute
_POLL_S = 0.2
_SPAWN_START_S = 20.0
_LEAVE_TO_CHILD_S = 10.0  # longest wait for a child to take a unit whose imports only the children warmed


@dataclass(frozen=True)
class Unit:
    """A share of the work: shape (``SHAPE``) or one image type, run with ``overrides`` on its settings,
    keeping the derived images whose position in the filter's output is ``i % stride == offset``."""

    image_type: str
    overrides: tuple = ()
    stride: int = 1
    offset: int = 0
    cost: float = 1.0

    def keeps(self, i: int) -> bool:
        return i % self.stride == self.offset


@dataclass
class UnitResult:
    """A unit's derived images as (position in the filter's output, name, features), the filter's number of
    images and PyRadiomics' warnings as (position of the image being made or measured, message)."""

    images: list[tuple[int, str, collections.OrderedDict]]
    n_images: int
    warnings: list[tuple[int, str]]

    @property
    def names(self) -> list[str]:
        return [name for _, name, _ in self.images]


@dataclass
class RunInfo:
    """How the case ran: ``workers`` processes used (1 = the calling process alone) and why, if fewer."""

    requested: int
    workers: int = 1
    start_method: str | None = None
    units: int = 0
    units_by_children: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"workers": self.workers, "requested": self.requested, "start_method": self.start_method,
                "units": self.units, "units_by_children": self.units_by_children, "notes": list(self.notes)}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """None or 0 -> the available cores, at most ``AUTO_MAX_WORKERS``; otherwise at least 1."""
    return min(available_cores(), AUTO_MAX_WORKERS) if not workers else max(1, int(workers))


def default_start_method() -> str:
    """fork where it exists and is the platform's habit (Linux): no re-import; spawn elsewhere."""
    return "fork" if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods() else "spawn"


def verified_version() -> bool:
    """Whether the installed PyRadiomics is one whose ``execute`` :func:`prepare` and :func:`run_unit` mirror."""
    return str(radiomics.__version__).startswith(VERIFIED_PYRADIOMICS)


def plan(extractor: featureextractor.RadiomicsFeatureExtractor, image_size: tuple[int, ...] | None,
         participants: int, shape: bool = True) -> list[Unit]:
    """Units in ``execute``'s order: shape (if ``shape`` and enabled), then the image types. LoG is split per
    sigma (when the image is large enough for the filter to run at all, so its one size warning is not
    repeated), Wavelet into sub-band strides."""
    units: list[Unit] = []
    if shape and any(c.startswith("shape") for c in extractor.enabledFeatures):
        units.append(Unit(SHAPE))
    for image_type, custom in extractor.enabledImagetypes.items():
        custom = custom or {}
        base = _FILTER_COST.get(image_type, 0.0)
        per = _IMAGES_PER_TYPE.get(image_type, 1)
        if image_type == "LoG" and participants > 1 and image_size is not None and min(image_size) >= 4:
            sigmas = list(custom.get("sigma", []) or [])
            if len(sigmas) > 1:
                units += [Unit("LoG", (("sigma", [s]),), cost=1.0 + base) for s in sigmas]
                continue
        if image_type == "Wavelet" and participants > 1:
            stride = min(8, 2 * participants)
            units += [Unit("Wavelet", (), stride, k, cost=base + 8 / stride) for k in range(stride)]
            continue
        units.append(Unit(image_type, (), cost=base + per))
    return units


@dataclass
class Prepared:
    """``execute`` up to its image-type loop: the result so far (diagnostics and shape, in order), the
    preprocessed image, the mask the feature classes use, the bounding box and this run's settings.
    ``inputs_at``: where the diagnostics of the input image and mask belong in ``head`` when they are
    computed elsewhere (see :func:`input_diagnostics`), else None."""

    head: collections.OrderedDict
    image: sitk.Image
    mask: sitk.Image
    bbox: Any
    settings: dict
    inputs_at: int | None = None
    shape_pending: bool = False

    def result(self, inputs: collections.OrderedDict | None = None) -> collections.OrderedDict:
        """The head with the input diagnostics put in their place."""
        if self.inputs_at is None:
            return collections.OrderedDict(self.head)
        items = list(self.head.items())
        return collections.OrderedDict(items[:self.inputs_at] + list((inputs or {}).items()) + items[self.inputs_at:])


def run_settings(extractor: featureextractor.RadiomicsFeatureExtractor, label: int) -> dict:
    """The settings ``execute`` runs with for ``label``."""
    settings = extractor.settings.copy()
    settings["label"] = label
    return settings


def input_diagnostics(image: sitk.Image, mask: sitk.Image, settings: dict) -> collections.OrderedDict:
    """PyRadiomics' ``Image-original_*`` and ``Mask-original_*`` diagnostics (hashes, statistics and connected
    components over the whole input: on a full CT a third of the preprocessing, and independent of the rest)."""
    info = generalinfo.GeneralInfo()
    static = set(info.getGeneralInfo())
    _add_inputs(info, image, imageoperations.getMask(mask, **settings), int(settings["label"]))
    return collections.OrderedDict((k, v) for k, v in info.getGeneralInfo().items() if k not in static)


def _add_inputs(info: generalinfo.GeneralInfo, image: sitk.Image, mask: sitk.Image, label: int) -> None:
    """``info.addImageElements(image)`` and ``info.addMaskElements(None, mask, label)``, same keys, order and
    values, but each ``*-original_Hash`` by :func:`sha1` (PyRadiomics adds every other element itself, under
    a prefix for which it hashes nothing; the keys are renamed)."""
    elements, p = info.getGeneralInfo(), info.generalInfo_prefix
    elements[p + "Image-original_Hash"] = sha1(image)
    elements[p + "Image-original_Dimensionality"] = f"{image.GetDimension():d}D"
    info.addImageElements(image, _UNHASHED)
    _rename_unhashed(elements)
    elements[p + "Mask-original_Hash"] = sha1(mask)
    info.addMaskElements(None, mask, label, _UNHASHED)
    _rename_unhashed(elements)


def _rename_unhashed(elements: collections.OrderedDict) -> None:
    """``*-original-unhashed_*`` keys renamed ``*-original_*``, moved to the end in their order."""
    for key in [k for k in elements if f"-{_UNHASHED}_" in k]:
        elements[key.replace(_UNHASHED, "original", 1)] = elements.pop(key)


def sha1(image: sitk.Image) -> str:
    """``sitk.Hash(image)`` (SHA-1 of the pixel buffer, little-endian), by hashlib: 4-8x faster (a full CT
    costs sitk.Hash 0.3-0.4 s)."""
    if sys.byteorder != "little":
        return sitk.Hash(image)
    return hashlib.sha1(sitk.GetArrayViewFromImage(image).data.cast("B")).hexdigest()


def prepare(extractor: featureextractor.RadiomicsFeatureExtractor, image: sitk.Image, mask: sitk.Image,
            label: int, inputs_elsewhere: bool = False) -> Prepared:
    """``execute`` up to the image-type loop (segment-based, SimpleITK inputs): load/resample, check,
    diagnostics and shape; with ``inputs_elsewhere`` the input diagnostics are left out (``Prepared.inputs_at``).
    Shape is left to a unit (``shape_pending``) when it uses the same mask as the feature classes."""
    settings = run_settings(extractor, label)
    tolerance = settings.get("geometryTolerance")
    additional = settings.get("additionalInfo", False)
    reseg_shape = settings.get("resegmentShape", False)
    if featureextractor.geometryTolerance != tolerance:
        extractor._setTolerance()
    info = None
    if additional:
        info = generalinfo.GeneralInfo()
        info.addGeneralSettings(settings)
        info.addEnabledImageTypes(extractor.enabledImagetypes)
    inputs_at = len(info.getGeneralInfo()) if info is not None and inputs_elsewhere else None
    image, mask = _load(image, mask, info if inputs_at is None else None, info, settings)
    bbox, corrected = imageoperations.checkMask(image, mask, **settings)
    if corrected is not None:
        if info is not None:
            info.addMaskElements(image, corrected, label, "corrected")
        mask = corrected
    resegmented = None
    if settings.get("resegmentRange", None) is not None:
        resegmented = imageoperations.resegmentMask(image, mask, **settings)
        bbox, corrected = imageoperations.checkMask(image, resegmented, **settings)
        if info is not None:
            info.addMaskElements(image, resegmented, label, "resegmented")
    head = collections.OrderedDict()
    if info is not None:
        head.update(info.getGeneralInfo())
    if resegmented is not None and not reseg_shape:  # shape on the mask before resegmentation: here
        head.update(extractor.computeShape(image, mask, bbox, **settings))
    mask = resegmented if resegmented is not None else mask
    return Prepared(head, image, mask, bbox, settings, inputs_at, shape_pending=resegmented is None or reseg_shape)


def _load(image: sitk.Image, mask: sitk.Image, inputs_info, info, settings: dict) -> tuple[sitk.Image, sitk.Image]:
    """PyRadiomics' ``loadImage`` for SimpleITK images; the input diagnostics go to ``inputs_info`` (or nowhere)."""
    label = settings.get("label", 1)
    mask = imageoperations.getMask(mask, **settings)
    if inputs_info is not None:
        _add_inputs(inputs_info, image, mask, label)
    if settings.get("normalize", False):
        image = imageoperations.normalizeImage(image, **settings)
    if settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None:
        image, mask = imageoperations.resampleImage(image, mask, **settings)
        if info is not None:
            info.addImageElements(image, "interpolated")
            info.addMaskElements(image, mask, label, "interpolated")
    elif settings.get("preCrop", False):
        bb, corrected = imageoperations.checkMask(image, mask, **settings)
        if corrected is not None:
            mask = corrected
        if bb is None:
            raise ValueError("Mask checks failed during pre-crop")
        image, mask = imageoperations.cropToTumorMask(image, mask, bb, **settings)
    return image, mask


def run_unit(extractor: featureextractor.RadiomicsFeatureExtractor, image: sitk.Image, mask: sitk.Image,
             bbox: Any, settings: dict, unit: Unit) -> UnitResult:
    """The body of ``execute``'s loop for the derived images of one unit (or its shape step)."""
    if unit.image_type == SHAPE:
        with _capture() as shape:
            features = extractor.computeShape(image, mask, bbox, **settings)
        return UnitResult([(0, "", features)], 1, shape.handler.records)
    args = settings.copy()
    args.update(extractor.enabledImagetypes[unit.image_type] or {})
    restore = {k: args[k] for k, _ in unit.overrides}
    args.update(dict(unit.overrides))
    done: list[tuple[int, str, collections.OrderedDict]] = []
    handler = _PhaseHandler()
    logging.getLogger("radiomics").addHandler(handler)
    try:
        images = getattr(imageoperations, f"get{unit.image_type}Image")(image, mask, **args)
        i = 0
        while True:
            handler.phase = i
            try:
                derived, name, kwargs = next(images)
            except StopIteration:
                break
            if unit.keeps(i):
                kwargs = {**kwargs, **restore}
                _LOG.info("Calculating features for %s image", name)
                derived, derived_mask = imageoperations.cropToTumorMask(derived, mask, bbox, padDistance=0)
                done.append((i, name, extractor.computeFeatures(derived, derived_mask, name, **kwargs)))
            i += 1
    finally:
        logging.getLogger("radiomics").removeHandler(handler)
    return UnitResult(done, i, handler.records)


def execute(extractor: featureextractor.RadiomicsFeatureExtractor, image: sitk.Image, mask: sitk.Image,
            label: int, workers: int | None = None, start_method: str | None = None,
            idle_imports: Sequence[str] | None = None, started: Started | None = None
            ) -> tuple[collections.OrderedDict, list[str], RunInfo]:
    """``extractor.execute(image, mask, label=label)`` with the image types spread over ``workers`` processes.

    ``idle_imports``: modules this process imports while it waits on the children. None = the filters'
    first-use modules, so that a later call in this process starts warm (a long-lived process: Slicer); a
    process that ends after this case names what it needs next instead (the command line: pandas).
    ``started``: worker processes :func:`start` began before the case was read (then ``workers`` and
    ``start_method`` are theirs); they are used and closed here.

    Returns the result (as ``execute`` returns it), PyRadiomics' warning messages in sequential order,
    and how it ran. The first error met (here or in a child) is raised, as ``execute`` would raise it.
    """
    settings = run_settings(extractor, label)
    if started is None:
        started = _begin(extractor, workers, start_method, (image, mask, settings))
    elif started.pool is not None and started.offload:
        started.pool.send_inputs((image, mask, settings))
    info, pool, offload = started.info, started.pool, started.offload
    try:
        with _capture() as pre:
            prep = prepare(extractor, image, mask, label, inputs_elsewhere=offload)
        participants = 1 + (len(pool.procs) if pool else 0)
        units = plan(extractor, prep.image.GetSize(), participants, shape=prep.shape_pending)
        info.units = len(units)
        if pool and sum(u.image_type != SHAPE for u in units) < 2:
            pool.cancel()
            info.notes.append("sequential: a single image type")
        if pool and not pool.cancelled:
            try:
                pool.send((extractor, prep.image, prep.mask, prep.bbox, prep.settings, units))
            except _ChildrenUnusable as e:
                info.notes.append(f"sequential: the case could not be sent to the worker processes ({e})")
        results = _run(units, pool, extractor, prep, info, idle_imports)
        inputs = None
        if offload and pool is not None:  # offload implies a pool; the check narrows it
            inputs = pool.input_diagnostics(results)
            if inputs is None:
                info.notes.append("input diagnostics computed here: the worker process had not sent them")
                inputs = input_diagnostics(image, mask, settings)
    except BaseException:
        if pool:
            pool.close(abort=True)  # an error or a cancel (Slicer): do not wait for the children
        raise
    if pool:
        pool.close()
        idle = len(pool.procs) - pool.n_used
        if idle and not pool.cancelled_before_send:
            info.notes.append(f"{idle} worker process(es) took no unit (still starting, or exited: "
                              f"exit codes {[p.exitcode for p in pool.procs]})")
    info.workers = 1 + (pool.n_used if pool else 0)
    out = prep.result(inputs)
    warnings = list(pre.messages)
    for group in _groups(units):
        features, messages = _merge(units, results, group)
        for f in features:
            out.update(f)
        warnings += messages
    return out, warnings, info


@dataclass
class Started:
    """Worker processes begun for one case (``pool`` None: it runs here, ``info.notes`` say why);
    ``offload``: the first one computes the input diagnostics."""

    info: RunInfo
    pool: _Children | None
    offload: bool

    def close(self) -> None:
        """Stop the workers (the case will not come: e.g. it failed its checks)."""
        if self.pool is not None:
            self.pool.close(abort=True)


def start(extractor: featureextractor.RadiomicsFeatureExtractor, workers: int | None = None,
          start_method: str | None = None) -> Started:
    """Begin the worker processes before the case is read, so that their first-use imports (0.6 s) overlap
    reading and checking it; hand the result to :func:`execute` (``started=``), or :meth:`Started.close` it."""
    return _begin(extractor, workers, start_method, None)


def _begin(extractor: featureextractor.RadiomicsFeatureExtractor, workers: int | None, start_method: str | None,
           inputs: tuple | None) -> Started:
    """How many processes to use (and why fewer), then start them. ``inputs`` (image, mask, settings): a forked
    first child has them already; None: they are sent when known (:meth:`_Children.send_inputs`)."""
    info = RunInfo(requested=resolve_workers(workers))
    max_units = len(plan(extractor, (99, 99, 99), max(2, info.requested), shape=False))
    want = min(info.requested, max_units) - 1 if max_units > 1 else 0
    if max_units <= 1 and info.requested > 1:
        info.notes.append("sequential: a single image type")
    if info.requested == 1 and not workers:
        info.notes.append("sequential: 1 core available")
    if want > 0 and not verified_version():
        info.notes.append(f"sequential: PyRadiomics {radiomics.__version__} is not a version this parallel "
                          f"extraction was verified against ({', '.join(VERIFIED_PYRADIOMICS)})")
        want = 0
    method = start_method or default_start_method()
    # The first child computes the input diagnostics while this process resamples: a forked child has the
    # inputs already; a child started before the case was read gets them through its pipe.
    diagnostics = bool(extractor.settings.get("additionalInfo", False))
    offload = diagnostics and (inputs is None or method == "fork")
    pool = None
    if want > 0:
        pool = _Children.start(want, method, extractor.enabledImagetypes, info, inputs if offload else None,
                               inputs_later=offload and inputs is None)
    return Started(info, pool, offload and pool is not None)


def _run(units: list[Unit], pool: _Children | None, extractor, prep: Prepared, info: RunInfo,
         idle_imports: Sequence[str] | None = None) -> list[UnitResult]:
    """Units from the light end here, from the heavy end in the children; then anything a child left.
    Without children: every unit here, in ``execute``'s order. The first error is raised at once."""
    args = (extractor, prep.image, prep.mask, prep.bbox, prep.settings)
    if pool is None or pool.cancelled:
        return [run_unit(*args, u) for u in units]
    order = sorted(range(len(units)), key=lambda i: -units[i].cost)  # heavy first; stable
    results: list[UnitResult | None] = [None] * len(units)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, available_cores() // (1 + len(pool.procs))))
    if idle_imports is None:  # the filters' first-use imports, done here only while waiting: later calls start warm
        idle_imports = [m for u in units for m in _LAZY_IMPORTS.get(u.image_type, ())]
    idle = [m for m in dict.fromkeys(idle_imports) if m not in sys.modules]
    try:
        while (pos := pool.claim_back(results, lambda pos: _cold(units[order[pos]]), idle)) is not None:
            results[order[pos]] = run_unit(*args, units[order[pos]])
            pool.collect(results, timeout=0)
        pool.collect(results, timeout=None, idle=idle)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    info.units_by_children = pool.n_results
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        info.notes.append(f"{len(missing)} unit(s) recomputed here after a worker process exited")
        for i in missing:
            results[i] = run_unit(*args, units[i])
    return results  # type: ignore[return-value]


def _cold(unit: Unit) -> bool:
    """The unit's filter would import modules (first use) that this process has not loaded."""
    return any(m not in sys.modules for m in _LAZY_IMPORTS.get(unit.image_type, ()))


def _groups(units: list[Unit]) -> list[list[int]]:
    """Consecutive units that are strides of one filter run form a group; any other unit is one alone."""
    groups: list[list[int]] = []
    for k, u in enumerate(units):
        if groups and u.stride > 1 and u.offset > 0 and units[groups[-1][0]].image_type == u.image_type:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def _merge(units: list[Unit], results: list[UnitResult], group: list[int]
           ) -> tuple[list[collections.OrderedDict], list[str]]:
    """Features per derived image and warnings of a group, in the filter's order. Each stride re-ran the whole
    filter, so the warnings of image ``i`` (and those after the last image) come from the stride owning it."""
    if len(group) == 1 and units[group[0]].stride == 1:
        res = results[group[0]]
        return [f for _, _, f in res.images], [m for _, m in res.warnings]
    n, stride = results[group[0]].n_images, units[group[0]].stride
    owner = {units[k].offset: results[k] for k in group}
    images = sorted(((pos, f) for k in group for pos, _, f in results[k].images), key=lambda x: x[0])
    messages = [m for pos in range(n) for p, m in owner[pos % stride].warnings if p == pos]
    messages += [m for p, m in owner[(n - 1) % stride if n else 0].warnings if p >= n]
    return [f for _, f in images], messages


class _PhaseHandler(logging.Handler):
    """Collects PyRadiomics warnings, tagged with the derived image being made or measured."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.phase = 0
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((self.phase, record.getMessage()))


class _capture:
    """Collect PyRadiomics warnings logged inside the block."""

    def __enter__(self) -> _capture:
        self.handler = _PhaseHandler()
        logging.getLogger("radiomics").addHandler(self.handler)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("radiomics").removeHandler(self.handler)

    @property
    def messages(self) -> list[str]:
        return [m for _, m in self.handler.records]


class _Children:
    """Child processes sharing a unit list with the calling process through a lock-protected [front, back]."""

    def __init__(self, procs, conns, bounds) -> None:
        self.procs, self.conns, self.bounds = procs, conns, bounds
        self.cancelled = False
        self.sender: threading.Thread | None = None
        self.inputs_sender: threading.Thread | None = None
        self.inputs: collections.OrderedDict | None = None
        self.n_results = 0
        self.used: set[int] = set()
        self.alive = set(range(len(procs)))

    @property
    def n_used(self) -> int:
        return len(self.used)

    @classmethod
    def start(cls, n: int, method: str, image_types: dict, info: RunInfo, inputs: tuple | None = None,
              inputs_later: bool = False) -> _Children | None:
        """Start ``n`` children (the first computes :func:`input_diagnostics` of ``inputs`` if given: with
        fork they are not copied); None (and a note) if that is not possible here."""
        procs: list = []
        conns: list = []
        try:
            ctx = mp.get_context(method)
            bounds = ctx.Array("i", [0, 0])
            warm = sorted({m for t in image_types for m in _LAZY_IMPORTS.get(t, ())})
            threads = max(1, available_cores() // (n + 1))
            for k in range(n):
                here, there = ctx.Pipe()
                # typeshed types get_context(str) as BaseContext, which declares no Process
                p = ctx.Process(target=_child,  # type: ignore[attr-defined]
                                args=(there, bounds, warm, threads, inputs if k == 0 else None,
                                      inputs_later and k == 0),
                                daemon=True, name="gistrisk-radiomics-unit")
                _start(p, method)
                there.close()
                procs.append(p)
                conns.append(here)
        except Exception as e:  # noqa: BLE001 - any failure to start means: run here
            for p in procs:
                p.terminate()
            info.notes.append(f"sequential: worker processes could not start ({type(e).__name__}: {e})")
            return None
        info.start_method = method
        return cls(procs, conns, bounds)

    def send(self, payload: tuple) -> None:
        """Hand the preprocessed case and its units (payload[-1]) to the children: pickled once, written by a
        thread, since a child still warming its imports reads it only then and this process has units to do."""
        try:
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - e.g. an image type's settings that do not pickle
            self.cancel()
            raise _ChildrenUnusable(f"{type(e).__name__}: {e}") from e
        with self.bounds.get_lock():
            self.bounds[0], self.bounds[1] = 0, len(payload[-1])
        self.sender = threading.Thread(target=self._write, args=(data, None, self.inputs_sender), daemon=True,
                                       name="gistrisk-send")
        self.sender.start()

    def send_inputs(self, inputs: tuple) -> None:
        """The case's (image, mask, settings) to the first child, for :func:`input_diagnostics` (by a thread:
        it reads them between its imports)."""
        try:
            data = pickle.dumps(("inputs", *inputs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - the input diagnostics are then computed here
            data = pickle.dumps(("inputs", None), protocol=pickle.HIGHEST_PROTOCOL)
        self.inputs_sender = threading.Thread(target=self._write, args=(data, [0], None), daemon=True,
                                              name="gistrisk-send-inputs")
        self.inputs_sender.start()

    def _write(self, data: bytes, only: list[int] | None, after: threading.Thread | None) -> None:
        if after is not None:  # messages reach a child in the order they were sent
            after.join()
        for k in sorted(self.alive if only is None else self.alive & set(only)):
            try:
                self.conns[k].send_bytes(data)
            except OSError:  # that child is gone; the others and this process do its share
                pass

    def claim_back(self, results: list, leave: Callable[[int], bool], idle: list[str]) -> int | None:
        """The last unclaimed position, or None. A position ``leave`` marks (a filter whose first-use imports
        the children warmed and this process lacks) is left to a live child for up to ``_LEAVE_TO_CHILD_S``,
        importing ``idle`` modules meanwhile."""
        deadline = None
        while True:
            with self.bounds.get_lock():
                if self.bounds[0] >= self.bounds[1]:
                    return None
                pos = self.bounds[1] - 1
                if not self.alive or not leave(pos) or (deadline is not None and time.monotonic() > deadline):
                    self.bounds[1] = pos
                    return pos
            deadline = deadline or time.monotonic() + _LEAVE_TO_CHILD_S
            if idle:
                _import(idle.pop(0))
            self.collect(results, timeout=0 if idle else 0.02)

    def claimed(self) -> int:
        """Units the children have taken so far (they take from the front)."""
        with self.bounds.get_lock():
            return self.bounds[0]

    def collect(self, results: list, timeout: float | None, idle: list[str] | None = None) -> None:
        """Take the children's results; with ``timeout=None`` wait until every unit a child took is back or
        that child is gone (a child that never started or hangs holds nothing up), importing ``idle`` modules
        meanwhile. A child's error is raised."""
        while self.alive:
            if timeout is None and self.n_results >= self.claimed():
                return
            if timeout is None and idle:
                _import(idle.pop(0))
                timeout_now = 0.0
            else:
                timeout_now = _POLL_S if timeout is None else timeout
            conns = {self.conns[k]: k for k in self.alive}
            sentinels = {self.procs[k].sentinel: k for k in self.alive}
            ready = wait(list(conns) + list(sentinels), timeout_now)
            if not ready:
                if timeout is None:
                    continue
                return
            for r in ready:
                if r in conns:
                    k = conns[r]
                    try:
                        msg = self.conns[k].recv()  # r itself: wait() types it as connection | socket | int
                    except (EOFError, OSError):
                        self.alive.discard(k)
                        continue
                    if msg[0] == "done":
                        self.alive.discard(k)
                    elif msg[0] == "inputs":
                        self.inputs = msg[1]
                    elif msg[0] == "ok":
                        idx, res = msg[1], msg[2]
                        results[idx] = res
                        self.n_results += 1
                        self.used.add(k)
                        for name in filter(None, res.names):  # shape has no image of its own
                            _LOG.info("Calculating features for %s image", name)  # progress for a listener
                    else:  # "error"
                        raise msg[2]
                elif sentinels.get(r) in self.alive and not self.conns[sentinels[r]].poll():
                    self.alive.discard(sentinels[r])

    def input_diagnostics(self, results: list) -> collections.OrderedDict | None:
        """The input diagnostics from the first child, if they have come (it sends them before any unit)."""
        if self.inputs is None:
            self.collect(results, timeout=0)
        return self.inputs

    @property
    def cancelled_before_send(self) -> bool:
        return self.cancelled and self.sender is None

    def cancel(self) -> None:
        """Children still waiting for the case get None and exit."""
        writing = self.inputs_sender is not None and self.inputs_sender.is_alive()
        if not self.cancelled and self.sender is None and not writing:  # else close() terminates them
            for c in self.conns:
                try:
                    c.send(None)
                except OSError:
                    pass
        self.cancelled = True

    def close(self, abort: bool = False) -> None:
        self.cancel()
        for p in self.procs:
            if not abort:
                p.join(timeout=0.5)  # done children exit at once; one still starting up is not waited for
            if p.is_alive():
                p.terminate()
                p.join(timeout=0.5)
            if p.is_alive():
                p.kill()
        for sender in (self.inputs_sender, self.sender):  # daemon threads: end once the children read or are gone
            if sender is not None:
                sender.join(timeout=0.2)
        for c in self.conns:
            c.close()


def _start(p, method: str) -> None:
    """Start a child. A spawned one is started from a thread with a time limit: with a wrong interpreter
    (e.g. an application launcher as ``sys.executable``) ``Process.start`` can block for ever."""
    if method == "fork":
        p.start()
        return
    err: list[BaseException] = []

    def run() -> None:
        try:
            p.start()
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            err.append(e)

    t = threading.Thread(target=run, daemon=True, name="gistrisk-start")
    t.start()
    t.join(_SPAWN_START_S)
    if t.is_alive():
        raise TimeoutError(f"a {method}ed worker did not start within {_SPAWN_START_S:g} s (interpreter "
                           f"{multiprocessing.spawn.get_executable()!r}; set it with multiprocessing.set_executable)")
    if err:
        raise err[0]


class _ChildrenUnusable(RuntimeError):
    """The payload could not be sent; the calling process runs every unit."""


def _child(conn, bounds, warm: list[str], threads: int, inputs: tuple | None, inputs_later: bool = False) -> None:
    """Child process: the input diagnostics if asked (``inputs``, or sent by :meth:`_Children.send_inputs`
    when ``inputs_later``), warm lazy imports, wait for the preprocessed case, then claim units from the
    front."""
    for logger in (logging.getLogger(), logging.getLogger("radiomics")):
        for h in list(logger.handlers):  # inherited (fork) handlers may print or drive a GUI: not here
            logger.removeHandler(h)
        logger.addHandler(logging.NullHandler())
    logging.getLogger("radiomics").propagate = False
    logging.getLogger("radiomics").setLevel(logging.WARNING)
    for name in ("stdout", "stderr"):  # e.g. a GUI console inherited by fork: not from a child
        try:
            getattr(sys, name).fileno()
        except (AttributeError, OSError, ValueError):
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the child
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    if inputs is not None and not _send_diagnostics(conn, inputs):
        return
    payload: Any = _NOTHING
    for name in warm:
        if inputs_later and payload is _NOTHING and conn.poll():  # the case's inputs first, if they have come
            payload = _answered(conn, _receive(conn))
        _import(name)
    while payload is _NOTHING:
        payload = _answered(conn, _receive(conn))
    if payload is None:
        return
    extractor, image, mask, bbox, settings, units = payload
    if extractor.settings.get("geometryTolerance") is not None:
        extractor._setTolerance()
    order = sorted(range(len(units)), key=lambda i: -units[i].cost)
    try:
        while True:
            with bounds.get_lock():
                if bounds[0] >= bounds[1]:
                    break
                pos = bounds[0]
                bounds[0] += 1
            idx = order[pos]
            try:
                conn.send(("ok", idx, run_unit(extractor, image, mask, bbox, settings, units[idx])))
            except Exception as e:  # noqa: BLE001 - sent to the caller, which raises it
                conn.send(("error", idx, _picklable(e)))
                break
        conn.send(("done",))
    except (BrokenPipeError, EOFError, OSError):
        pass


_NOTHING = object()  # no message received yet


def _receive(conn) -> Any:
    """The next message, or None when the parent is gone."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _answered(conn, msg: Any) -> Any:
    """``msg``; or, for the case's inputs (:meth:`_Children.send_inputs`), their diagnostics sent back and
    ``_NOTHING`` (None if the parent is gone)."""
    if not (isinstance(msg, tuple) and len(msg) in (2, 4) and msg[0] == "inputs"):
        return msg
    return _NOTHING if _send_diagnostics(conn, msg[1:]) else None


def _send_diagnostics(conn, inputs: tuple) -> bool:
    """Compute :func:`input_diagnostics` of ``inputs`` (image, mask, settings; or (None,): not available) and
    send them (None on any error: the caller computes them and meets the error, if real). False: parent gone."""
    try:
        diagnostics = input_diagnostics(*inputs) if len(inputs) == 3 else None
    except Exception:  # noqa: BLE001 - see above
        diagnostics = None
    try:
        conn.send(("inputs", diagnostics))
    except OSError:
        return False
    return True


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # PyRadiomics reports a missing optional package itself when it needs it


def _picklable(e: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(e).__name__}: {e}")
