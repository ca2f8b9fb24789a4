"""`gistrisk demo`: simulate a small cohort and run the whole pipeline on it, step by step.

The cohort steps (radiomics extraction, slide tiling, slide features) call the arms' Python APIs
(:mod:`gistrisk.radiomics.runs`, :mod:`gistrisk.pathology.runs`); classifier training, fit, validate
and report are the `gistrisk` command lines a research group types. Every step runs in its own child
process (an API call: a fresh interpreter given the function and its arguments) with its output in
``<out>/logs/<step>.log``: worker processes forked by a process that has already run PyTorch hang once
they use more than one thread, so no step may leave PyTorch state behind for a later step's batch (and
a crash in native code ends one step, not the demo). A failing pathology step does not stop the demo:
the models are fitted on the modalities that produced features, and the summary says so.
"""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gistrisk.atomic import write_json, write_text
from gistrisk.errors import GistRiskError, InputError
from gistrisk.pathology.runs import feature_cohort, tile_cohort
from gistrisk.pathology.tiling import TileConfig
from gistrisk.paths import check_output
from gistrisk.radiomics.runs import extract_cohort
from gistrisk.simulate.demo_settings import DemoSettings, settings_rows
from gistrisk.simulate.study import simulate_cohort
from gistrisk.survival.config import DEFAULT_CONFIG


@dataclass
class Step:
    """One step of the demo: a `gistrisk` command line (``argv``) or a Python API call (``call(**kwargs)``,
    whose result has ``summary()`` and ``n_failed``). ``modality`` is the feature table it produces, if
    any. ``batch``: a cohort step whose exit status 1 (a call: ``n_failed`` > 0) means some inputs failed
    (recorded) and the rest are done."""

    name: str
    argv: list[str] = field(default_factory=list)
    produces: Path | None = None
    modality: str | None = None
    optional: bool = False
    batch: bool = False
    call: Callable[..., Any] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    seconds: float = 0.0
    message: str = ""

    def describe(self) -> str:
        """What the step runs, as the console shows it."""
        if self.call is None:
            return "gistrisk " + " ".join(self.argv)
        args = ", ".join(f"{k}={str(v) if isinstance(v, Path) else v!r}" for k, v in self.kwargs.items()
                         if k != "on_message")
        return f"{self.call.__module__}.{self.call.__name__}({args})"


@dataclass
class Layout:
    """Where the demo writes everything under ``out``."""

    out: Path
    cohort: Path = field(init=False)
    features: Path = field(init=False)
    work: Path = field(init=False)
    logs: Path = field(init=False)
    model: Path = field(init=False)
    validation: Path = field(init=False)
    report: Path = field(init=False)

    def __post_init__(self) -> None:
        o = self.out
        self.cohort, self.features, self.work = o / "cohort", o / "features", o / "work"
        self.logs, self.model, self.validation = o / "logs", o / "model", o / "validation"
        self.report = o / "report.html"

    def cohort_dir(self, name: str) -> Path:
        return self.cohort / name


def fit_config_text(s: DemoSettings) -> str:
    """The fit defaults with the demo's smaller forests, folds and bootstrap (YAML)."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    cfg["seed"], cfg["n_jobs"], cfg["bootstrap"] = s.seed, s.jobs, s.bootstrap
    cfg["modality"]["rsf"]["n_estimators"] = s.rsf_trees
    cfg["modality"]["rsf"]["cv_folds"] = s.rsf_folds
    return "# gistrisk demo: the fit defaults with smaller forests, folds and bootstrap\n" + yaml.safe_dump(
        cfg, sort_keys=False)


def plan(lay: Layout, s: DemoSettings) -> list[Step]:
    """The steps of the demo, in order (they read what the earlier ones write)."""
    dev, ext = lay.cohort_dir("development"), lay.cohort_dir("external")
    steps: list[Step] = []
    for name, cdir in (("development", dev), ("external", ext)):
        table = lay.features / f"{name}_radiomics.parquet"
        steps.append(Step(f"radiomics_{name}", produces=table, modality="radiomics", batch=True, call=extract_cohort,
                          kwargs={"manifest": cdir / "radiomics_manifest.csv", "out": table, "jobs": s.jobs}))
    tiles, clf = lay.work / "tiles", lay.work / "classifier"
    steps.append(Step("pathology_tiles", produces=tiles, optional=True, batch=True, call=tile_cohort,
                      kwargs={"slides": lay.work / "annotated_slides.csv", "out_dir": tiles,
                              "config": TileConfig(tile_size=s.tile_size), "jobs": s.jobs,
                              "on_message": print_message}))
    train = ["pathology", "train", "--tiles", str(tiles), "--out", str(clf), "--epochs", str(s.epochs),
             "--batch-size", str(s.batch_size), "--lr", f"{s.lr:g}", "--seed", str(s.seed), "--device", "cpu"]
    if s.weights:
        train += ["--weights", str(s.weights)]
    steps.append(Step("pathology_train", train, optional=True))
    for name, cdir in (("development", dev), ("external", ext)):
        table = lay.features / f"{name}_pathology.parquet"
        steps.append(Step(f"pathology_features_{name}", produces=table, modality="pathology", optional=True,
                          batch=True, call=feature_cohort,
                          kwargs={"classifier": clf, "slides": cdir / "slide_manifest.csv", "out": table,
                                  "feature": {"tumour_threshold": s.tumour_threshold},
                                  "inference": {"device": "cpu"}, "jobs": s.jobs, "on_message": print_message}))
    fit = ["fit", "--outcomes", str(dev / "outcomes.csv"), "--out", str(lay.model),
           "--config", str(lay.work / "fit_demo.yaml"), "--jobs", str(s.jobs), "--seed", str(s.seed)]
    steps.append(Step("fit", fit))
    steps.append(Step("validate", ["validate", "--model", str(lay.model), "--outcomes", str(ext / "outcomes.csv"),
                                   "--out", str(lay.validation), "--bootstrap", str(s.bootstrap),
                                   "--seed", str(s.seed)]))
    steps.append(Step("report", ["report", "--validation", str(lay.validation), "--out", str(lay.report),
                                 "--model", str(lay.model), "--clinical", str(ext / "clinical.csv"),
                                 "--dev-outcomes", str(dev / "outcomes.csv"),
                                 "--dev-clinical", str(dev / "clinical.csv"),
                                 "--figures", str(lay.out / "figures")]))
    return steps


def print_message(line: str) -> None:
    """A run's console line (mpp notes, warnings) -> stderr, i.e. the step's log."""
    print(line, file=sys.stderr, flush=True)


def _modality_args(steps: list[Step], cohort: str, lay: Layout) -> list[str]:
    """``-m NAME=TABLE`` for the clinical table and every feature table a step produced."""
    args = ["-m", f"clinical={lay.cohort_dir(cohort) / 'clinical.csv'}"]
    for st in steps:
        if (st.modality and st.name.endswith(cohort) and st.status == "ok" and st.produces is not None
                and st.produces.is_file()):
            args += ["-m", f"{st.modality}={st.produces}"]
    return args


def _annotated_manifest(lay: Layout) -> Path:
    """The development slides that carry annotations, with absolute paths (input of tiling)."""
    dev = lay.cohort_dir("development")
    rows = list(csv.DictReader((dev / "slide_manifest.csv").open(encoding="utf-8")))
    lines = ["patient_id,slide,slide_id,annotations,mpp"]
    for r in rows:
        if r["annotations"]:
            lines.append(f"{r['patient_id']},{dev / r['slide']},{r['slide_id']},{dev / r['annotations']},{r['mpp']}")
    path = lay.work / "annotated_slides.csv"
    write_text(path, "\n".join(lines) + "\n")
    return path


def _run(step: Step, lay: Layout, echo: Callable[[str], None]) -> None:
    log = lay.logs / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    echo(f"[{step.name}] {step.describe()}")
    t0 = time.perf_counter()
    if step.call is None:
        child, sent = [sys.executable, "-m", "gistrisk", *step.argv], None
    else:  # the call and its arguments go to a fresh interpreter on stdin
        child, sent = [sys.executable, "-c", _CALL_STEP], pickle.dumps((step.call, step.kwargs))
    with log.open("w", encoding="utf-8") as fh:
        rc = subprocess.run(child, input=sent, stdout=fh, stderr=subprocess.STDOUT).returncode
    step.seconds = time.perf_counter() - t0
    produced = step.produces is None or (step.produces.is_file() or any(step.produces.glob("*.parquet")))
    if produced and (rc == 0 or (rc == 1 and step.batch)):
        step.status = "ok"
        if rc == 1:  # the batch kept going past failed inputs; they are listed beside its output
            step.message = f"some inputs failed and were left out; see {log} and the failures file"
    else:
        step.status = "failed"
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        step.message = f"exit {rc}; log {log}: " + " | ".join(tail)
    echo(f"[{step.name}] {step.status} in {step.seconds:.0f} s" + (f": {step.message}" if step.message else ""))


_CALL_STEP = "from gistrisk.simulate.demo import _call_step; _call_step()"


def _call_step() -> None:
    """Child process of an API step: ``(call, kwargs)`` pickled on stdin; prints the result's summary.
    Exit status as the matching command's: 0 all done, 1 some inputs failed (or a crash, with its
    traceback), 2 bad input (one ``error:`` line)."""
    call, kwargs = pickle.load(sys.stdin.buffer)
    try:
        result = call(**kwargs)
    except GistRiskError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(result.summary(), flush=True)
    sys.exit(1 if result.n_failed else 0)


def run_demo(out: Path, settings: DemoSettings | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Simulate, extract, train, fit, validate and report; returns a summary (also summary.json)."""
    s = settings or DemoSettings()
    lay = Layout(check_output(out, kind="dir").resolve())
    for stale in (lay.report, lay.out / "summary.json"):  # never report a previous run's file
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    echo(f"[simulate] {s.patients} development + {s.external} external patients, seed {s.seed}")
    try:  # the same demo again resumes; another size or seed replaces the cohort
        simulate_cohort(lay.cohort, s.patients, s.external, s.seed, config=s.simulation_config(),
                        workers=s.jobs)
    except InputError:
        echo(f"[simulate] {lay.cohort} holds another simulation: replacing it")
        simulate_cohort(lay.cohort, s.patients, s.external, s.seed, config=s.simulation_config(),
                        workers=s.jobs, overwrite=True)
    sim_s = time.perf_counter() - t0
    _annotated_manifest(lay)
    write_text(lay.work / "fit_demo.yaml", fit_config_text(s))
    steps = plan(lay, s)
    by_name = {st.name: st for st in steps}
    for st in steps:
        if st.name in ("fit", "validate"):
            st.argv += _modality_args(steps, "development" if st.name == "fit" else "external", lay)
        if st.name.startswith("pathology_features") and by_name["pathology_train"].status != "ok":
            st.status, st.message = "skipped", "no classifier"
            continue
        if st.name == "pathology_train" and by_name["pathology_tiles"].status != "ok":
            st.status, st.message = "skipped", "no tiles"
            continue
        if st.name in ("validate", "report") and by_name["fit"].status != "ok":
            st.status, st.message = "skipped", "no model"
            continue
        _run(st, lay, echo)
        if st.status == "failed" and not st.optional and st.name != "report":
            for later in steps[steps.index(st) + 1:]:
                later.status, later.message = "not run", f"{st.name} failed"
            break
    summary = _summary(lay, s, steps, sim_s, time.perf_counter() - t0)
    write_json(lay.out / "summary.json", summary)
    return summary


def _summary(lay: Layout, s: DemoSettings, steps: list[Step], sim_s: float, total_s: float) -> dict:
    cohort = json.loads((lay.cohort / "cohort.json").read_text(encoding="utf-8"))
    metrics_path = lay.validation / "metrics.json"
    validated = any(st.name == "validate" and st.status == "ok" for st in steps)  # not a stale file
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if validated else None
    return {
        "out": str(lay.out), "report": str(lay.report) if lay.report.is_file() else None,
        "seconds": round(total_s, 1), "simulate_seconds": round(sim_s, 1),
        "steps": [{"name": st.name, "status": st.status, "seconds": round(st.seconds, 1),
                   "message": st.message} for st in steps],
        "oracle_c_index": {k: v["oracle_c_index"] for k, v in cohort["cohorts"].items()},
        "validation_metrics": metrics,
        "settings": [{"setting": a, "demo": b, "paper": c} for a, b, c in settings_rows(s)],
    }
