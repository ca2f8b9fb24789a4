"""The clinical data dictionary: what each clinical variable is, its unit and the words for its values.

One description (``dictionary.yaml`` beside this file, extendable with a user's YAML) read by the
clinical modality, the modified NIH and AFIP comparators, the Slicer form and ``predict``. Cells
are mapped to the dictionary's terms only through its synonyms, ICD-O-3 codes and units; any
other value is refused with the file, patient, column and value named (or, when the user asks
for it, kept as the explicit category ``unknown``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from gistrisk.errors import InputError

DICTIONARY_FILE = Path(__file__).with_name("dictionary.yaml")
UNKNOWN = "unknown"
KINDS = ("numeric", "category", "boolean")
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(.*?)\s*$", re.I)
_ICD_O = re.compile(r"^c\s*(\d{2})(?:\s*\.?\s*(\d))?$", re.I)


def _key(text: Any) -> str:
    """Matching key: lower case, ``_``/``-`` as spaces, single spaces, no trailing full stop."""
    s = str(text).strip().lower().replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", s).rstrip(". ").strip()


def _column_key(name: Any) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


def _unit_key(unit: str) -> str:
    return re.sub(r"\s+", "", str(unit).strip().lower())


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or (
        isinstance(v, str) and not v.strip())


@dataclass
class Variable:
    """One clinical variable as the dictionary describes it."""

    name: str
    kind: str
    columns: list[str]
    unit: str | None = None
    units: dict[str, float] = field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    treatment: bool = False
    synonyms: dict[str, str] = field(default_factory=dict)   # matching key -> category
    icd_o: dict[str, str] = field(default_factory=dict)      # "C16" / "C17.0" -> category

    @property
    def levels(self) -> list[str]:
        return list(self.values)


class ClinicalDictionary:
    """The dictionary's variables and the rules that read a cell.

    Parameters
    ----------
    data : dict     the parsed YAML (the packaged dictionary merged with any user extensions)
    sources : list of str   files it was read from (recorded with every output)
    """

    def __init__(self, data: dict[str, Any], sources: list[str] | None = None):
        self.sources = list(sources or [])
        self.extensions: list[dict[str, Any]] = []   # the users' YAML, as parsed (travels in the bundle)
        self.unrecognised = data.get("unrecognised", "refuse")
        if self.unrecognised not in ("refuse", UNKNOWN):
            raise InputError(f"clinical dictionary: 'unrecognised' must be refuse or unknown, got "
                             f"{self.unrecognised!r}", file=self.sources[-1] if self.sources else None)
        self.unknown_words = {_key(w) for w in data.get("unknown_synonyms", [])}
        boolean = data.get("boolean", {})
        self.yes = {_key(w) for w in boolean.get("yes", [])}
        self.no = {_key(w) for w in boolean.get("no", [])}
        self.variables: dict[str, Variable] = {}
        self._by_column: dict[str, Variable] = {}
        for name, spec in (data.get("variables") or {}).items():
            self._add(name, spec)

    # ---- construction -------------------------------------------------------------------------------
    def _where(self) -> str | None:
        return self.sources[-1] if self.sources else None

    def _add(self, name: str, spec: dict[str, Any]) -> None:
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise InputError(f"clinical dictionary: variable {name!r} needs a type ({', '.join(KINDS)})",
                             file=self._where())
        var = Variable(name=name, kind=spec["type"], columns=[name, *spec.get("columns", [])],
                       unit=spec.get("unit"), units={_unit_key(k): float(v) for k, v in (spec.get("units") or {}).items()},
                       min=spec.get("min"), max=spec.get("max"), values=dict(spec.get("values") or {}),
                       treatment=bool(spec.get("treatment", False)))
        for level, attrs in var.values.items():
            attrs = attrs or {}
            var.values[level] = attrs
            for word in [level, *attrs.get("synonyms", [])]:
                self._synonym(var, _key(word), level)
            for code in attrs.get("icd_o", []):
                var.icd_o[str(code).upper()] = level
        self.variables[name] = var
        for col in var.columns:
            other = self._by_column.get(_column_key(col))
            if other is not None and other.name != name:
                raise InputError(f"clinical dictionary: column name {col!r} means both {other.name!r} and {name!r}",
                                 file=self._where())
            self._by_column[_column_key(col)] = var

    def _synonym(self, var: Variable, key: str, level: str) -> None:
        have = var.synonyms.get(key)
        if have is not None and have != level:
            raise InputError(f"clinical dictionary: {key!r} means both {have!r} and {level!r} for {var.name!r}",
                             file=self._where())
        var.synonyms[key] = level

    def extend(self, data: dict[str, Any], source: str) -> None:
        """Add a user's variables, synonyms and settings (a conflicting synonym is refused)."""
        self.sources.append(source)
        self.extensions.append(data)
        if "unrecognised" in data:
            if data["unrecognised"] not in ("refuse", UNKNOWN):
                raise InputError("'unrecognised' must be refuse or unknown", file=source)
            self.unrecognised = data["unrecognised"]
        self.unknown_words |= {_key(w) for w in data.get("unknown_synonyms", [])}
        self.yes |= {_key(w) for w in (data.get("boolean") or {}).get("yes", [])}
        self.no |= {_key(w) for w in (data.get("boolean") or {}).get("no", [])}
        if self.yes & self.no:
            raise InputError(f"{sorted(self.yes & self.no)} listed as both yes and no", file=source)
        for name, spec in (data.get("variables") or {}).items():
            if name not in self.variables:
                self._add(name, spec)
                continue
            var = self.variables[name]
            for col in spec.get("columns", []):
                if _column_key(col) in self._by_column and self._by_column[_column_key(col)] is not var:
                    raise InputError(f"column name {col!r} already means {self._by_column[_column_key(col)].name!r}",
                                     file=source)
                var.columns.append(col)
                self._by_column[_column_key(col)] = var
            for k, v in (spec.get("units") or {}).items():
                var.units[_unit_key(k)] = float(v)
            for level, attrs in (spec.get("values") or {}).items():
                attrs = attrs or {}
                var.values.setdefault(level, {k: v for k, v in attrs.items() if k not in ("synonyms", "icd_o")})
                for word in [level, *attrs.get("synonyms", [])]:
                    self._synonym(var, _key(word), level)
                for code in attrs.get("icd_o", []):
                    var.icd_o[str(code).upper()] = level

    @property
    def sha256(self) -> str:
        """Hash of the packaged dictionary and the users' extensions (their parsed content)."""
        h = hashlib.sha256(DICTIONARY_FILE.read_bytes())
        for data in self.extensions:
            h.update(json.dumps(data, sort_keys=True, ensure_ascii=False).encode())
        return h.hexdigest()

    def record(self) -> dict[str, Any]:
        """What a model bundle keeps: the files, the hash, the setting and the extensions themselves."""
        return {"files": self.sources, "sha256": self.sha256, "unrecognised": self.unrecognised,
                "extensions": self.extensions}

    # ---- lookup -------------------------------------------------------------------------------------
    def variable_for_column(self, column: str) -> Variable | None:
        """The variable a column holds, recognised by its name or the dictionary's column names."""
        return self._by_column.get(_column_key(column))

    def column_for(self, df_columns: Iterable[str], variable: str) -> str | None:
        """The first column of a table that holds ``variable``."""
        return next((c for c in df_columns if (v := self.variable_for_column(c)) is not None and v.name == variable),
                    None)

    def site_attributes(self, level: str) -> dict[str, Any]:
        return self.variables["site"].values.get(level, {})

    # ---- reading a cell -----------------------------------------------------------------------------
    def category(self, var: Variable | str, raw: Any, *, file: str | None = None, patient: Any = None,
                 column: str | None = None) -> str | None:
        """The dictionary's term for a category cell; None when empty."""
        var = self.variables[var] if isinstance(var, str) else var
        if _missing(raw):
            return None
        key = _key(raw)
        if key in var.synonyms:
            return var.synonyms[key]
        if key in self.unknown_words:
            return UNKNOWN
        hit = self._icd_o(var, key) if var.icd_o else None
        if hit is None:
            # "Stomach (antrum)", "stomach, body": every part names the same category
            parts = [p for p in (_key(s) for s in re.split(r"[(),;]", str(raw))) if p]
            found = {var.synonyms.get(p) for p in parts}
            if len(parts) > 1 and len(found) == 1 and None not in found:
                hit = found.pop()
        if hit is not None:
            return hit
        return self._unrecognised(var, raw, file, patient, column,
                                  f"one of {', '.join(var.levels)} or their synonyms")

    def _icd_o(self, var: Variable, key: str) -> str | None:
        m = _ICD_O.match(key.replace(" ", ""))
        if not m:
            return None
        major, minor = f"C{m.group(1)}", m.group(2)
        if minor is not None and f"{major}.{minor}" in var.icd_o:
            return var.icd_o[f"{major}.{minor}"]
        return var.icd_o.get(major)

    def _unrecognised(self, var: Variable, raw: Any, file, patient, column, expected: str) -> str:
        if self.unrecognised == UNKNOWN and var.kind == "category":
            return UNKNOWN
        raise InputError(f"value {str(raw)!r} is not in the clinical dictionary for {var.name!r} (expected "
                         f"{expected}); add it to your own dictionary YAML (--clinical-dictionary) if it is a "
                         f"synonym" + (", or set 'unrecognised: unknown' to keep it as unknown"
                                       if var.kind == "category" else ""),
                         file=file, patient=patient, column=column or var.name)

    def boolean(self, var: Variable | str, raw: Any, *, file: str | None = None, patient: Any = None,
                column: str | None = None) -> float:
        """1.0 / 0.0 for a yes/no cell; NaN when empty or written as unknown."""
        var = self.variables[var] if isinstance(var, str) else var
        if _missing(raw):
            return math.nan
        if isinstance(raw, (bool, np.bool_)):
            return float(raw)
        if isinstance(raw, (int, float, np.integer, np.floating)) and float(raw) in (0.0, 1.0):
            return float(raw)
        key = _key(raw)
        if key in self.yes:
            return 1.0
        if key in self.no:
            return 0.0
        if key in self.unknown_words:
            return math.nan
        self._unrecognised(var, raw, file, patient, column, "yes or no (1/0, y/n, true/false, 是/否 ...)")
        return math.nan  # pragma: no cover - _unrecognised raises for booleans

    def number(self, var: Variable | str, raw: Any, *, file: str | None = None, patient: Any = None,
               column: str | None = None) -> float:
        """A numeric cell in the variable's unit (a unit written after the number is converted)."""
        var = self.variables[var] if isinstance(var, str) else var
        col = column or var.name
        if _missing(raw):
            return math.nan
        if isinstance(raw, (bool, np.bool_)):
            raise InputError(f"value {raw!r} is not a number", file=file, patient=patient, column=col)
        if isinstance(raw, (int, float, np.integer, np.floating)):
            value, unit, written_unit = float(raw), "", ""
        else:
            m = _NUMBER.match(str(raw))
            if not m:
                if _key(raw) in self.unknown_words:
                    return math.nan
                raise InputError(f"value {str(raw)!r} is not a number" + (f" in {var.unit}" if var.unit else ""),
                                 file=file, patient=patient, column=col)
            value, written_unit = float(m.group(1)), m.group(2)
            unit = _unit_key(written_unit)
        if not math.isfinite(value):
            raise InputError(f"value {raw!r} is not a finite number", file=file, patient=patient, column=col)
        if unit:
            if unit not in var.units:
                known = ", ".join(sorted(var.units)) or "none"
                raise InputError(f"value {str(raw)!r}: unit {written_unit!r} is not one the dictionary knows for "
                                 f"{var.name} (known: {known})", file=file, patient=patient, column=col)
            value *= var.units[unit]
        lo, hi = var.min, var.max
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            hint = ""
            if var.units and len(var.units) > 1 and not unit:
                hint = f"; if it is in another unit, write the unit after the number ({', '.join(sorted(var.units))})"
            raise InputError(f"value {str(raw)!r} is outside the plausible range {lo:g} to {hi:g}"
                             f"{' ' + var.unit if var.unit else ''}{hint}", file=file, patient=patient, column=col)
        return value

    # ---- a whole table ------------------------------------------------------------------------------
    def normalise_table(self, df: pd.DataFrame, source: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Cells of the dictionary's variables in its terms and units; other columns as written.

        ``df`` is indexed by patient_id. Returns the new table and a report: per column the values
        mapped (written -> term, with counts), the values kept as ``unknown``, and the columns the
        dictionary does not describe.
        """
        out = df.copy()
        report: dict[str, Any] = {"mapped": {}, "unknown": {}, "not_in_dictionary": [], "converted_units": {}}
        for col in df.columns:
            var = self.variable_for_column(col)
            if var is None:
                report["not_in_dictionary"].append(str(col))
                continue
            cells = df[col]
            if var.kind == "numeric":
                vals = [self.number(var, v, file=source, patient=pid, column=str(col)) for pid, v in cells.items()]
                conv = sum(bool(m and m.group(2)) for m in (_NUMBER.match(v) for v in cells if isinstance(v, str)))
                if conv:
                    report["converted_units"][str(col)] = int(conv)
                out[col] = pd.Series(vals, index=df.index, dtype=float)
                continue
            if var.kind == "boolean":
                vals = [self.boolean(var, v, file=source, patient=pid, column=str(col)) for pid, v in cells.items()]
                terms = ["yes" if v == 1 else "no" if v == 0 else None for v in vals]
                out[col] = pd.Series(vals, index=df.index, dtype=float)
            else:
                terms = [self.category(var, v, file=source, patient=pid, column=str(col)) for pid, v in cells.items()]
                out[col] = pd.Series(terms, index=df.index, dtype=object)
            mapped: dict[str, int] = {}
            for raw, term in zip(cells, terms):
                if term is None or _missing(raw) or str(raw).strip() == term:
                    continue
                if var.kind == "boolean" and _key(raw) in ("0", "1", "0.0", "1.0"):
                    continue
                k = f"{str(raw).strip()} -> {term}"
                mapped[k] = mapped.get(k, 0) + 1
            if mapped:
                report["mapped"][str(col)] = mapped
            unk = [str(p) for p, t in zip(df.index, terms) if t == UNKNOWN]
            if unk:
                report["unknown"][str(col)] = unk
        return out, report


def load_dictionary(extra: Iterable[str | Path] = (), record: dict[str, Any] | None = None) -> ClinicalDictionary:
    """The packaged dictionary, extended by the extensions a bundle recorded (``record``) and then
    by each of the user's YAML files in ``extra``."""
    d = ClinicalDictionary(_read_yaml(DICTIONARY_FILE), [str(DICTIONARY_FILE)])
    if record:
        for i, data in enumerate(record.get("extensions") or []):
            src = (record.get("files") or [])[i + 1:i + 2]
            d.extend(data, f"model bundle ({src[0] if src else 'extension'})")
    for path in extra:
        d.extend(_read_yaml(Path(path)), str(path))
    return d


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"cannot read the clinical dictionary ({e})", file=str(path)) from e
    if not isinstance(data, dict):
        raise InputError("a clinical dictionary must be a YAML mapping", file=str(path))
    return data


_DEFAULT: ClinicalDictionary | None = None


def default_dictionary() -> ClinicalDictionary:
    """The packaged dictionary (read once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_dictionary()
    return _DEFAULT
