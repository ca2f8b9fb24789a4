"""The clinical form: fields from a model's ``clinical_schema_``, and checked values.

The widget draws one input per :class:`ClinicalField`; :func:`parse_values`
turns what the user typed into the one-row clinical table the model expects,
refusing out-of-range numbers, text where a number belongs and unknown levels
with a message naming the patient, the field and the unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gistrisk.clinical.dictionary import UNKNOWN, Variable, default_dictionary
from gistrisk.errors import InputError

# A field's role for the modified NIH category: the clinical dictionary's variable its name means.
_ROLES = {"tumour_size_cm": "size", "mitoses_per_5mm2": "mitoses", "site": "site", "rupture": "rupture"}
_NON_NEGATIVE_ROLES = {"size", "mitoses"}
_LEADING_NUMBER = re.compile(r"^\s*[-+]?(\d|\.\d)")


@dataclass(frozen=True)
class ClinicalField:
    """One clinical input: name as in the model, kind, levels, unit and allowed range."""

    name: str
    kind: str  # "numeric" | "categorical"
    levels: tuple[str, ...] | None = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    model_input: bool = True  # False: asked only for the modified NIH category

    @property
    def variable(self) -> Variable | None:
        """The clinical dictionary's variable this field holds (recognised from its name), if any."""
        return default_dictionary().variable_for_column(self.name)

    @property
    def role(self) -> str | None:
        """"size", "mitoses", "site", "rupture" or None (from the dictionary variable of its name)."""
        var = self.variable
        return _ROLES.get(var.name) if var is not None else None

    @property
    def label(self) -> str:
        """Human label with the unit, e.g. ``"tumour size cm (cm)"``."""
        text = self.name.replace("_", " ")
        text = f"{text} ({self.unit})" if self.unit else text
        return text if self.model_input else f"{text} [NIH only]"

    @property
    def non_negative(self) -> bool:
        """Sizes, counts and every quantity the model only saw at or above 0 cannot be negative."""
        return self.role in _NON_NEGATIVE_ROLES or (self.min is not None and self.min >= 0)


def fields_from_schema(schema: Iterable[Mapping[str, Any]]) -> list[ClinicalField]:
    """Build the form's fields from a model's ``clinical_schema_`` (list of dicts)."""
    fields = []
    for i, entry in enumerate(schema):
        name = entry.get("name")
        kind = entry.get("kind")
        if not name or kind not in ("numeric", "categorical"):
            raise InputError(f"clinical schema entry {i} is malformed: {dict(entry)!r}")
        levels = entry.get("levels")
        fields.append(ClinicalField(
            name=str(name), kind=kind,
            levels=tuple(str(v) for v in levels) if levels is not None else None,
            unit=entry.get("unit"),
            min=_opt_float(entry.get("min")), max=_opt_float(entry.get("max")),
        ))
    return fields


#: Inputs of the modified NIH category the model may not use itself, asked for the NIH answer only.
NIH_FIELDS = (
    ClinicalField("tumour_size_cm", "numeric", unit="cm", model_input=False),
    ClinicalField("mitoses_per_50hpf", "numeric", unit="per 50 HPF (5 mm2)", model_input=False),
    ClinicalField("site", "categorical", levels=tuple(default_dictionary().variables["site"].levels),
                  model_input=False),
    ClinicalField("rupture", "categorical", levels=("no", "yes"), model_input=False),
)


def form_fields(model_fields: list[ClinicalField]) -> list[ClinicalField]:
    """The model's clinical fields plus the NIH inputs it lacks (size, mitoses, site, rupture)."""
    have = {f.role for f in model_fields}
    return list(model_fields) + [f for f in NIH_FIELDS if f.role not in have]


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def parse_value(field: ClinicalField, raw: Any, patient: str | None = None,
                warnings: list[str] | None = None) -> float | str | None:
    """Check one typed value; empty means missing (None).

    Impossible values (text for a number, a negative size or count, an unknown
    level) raise InputError. A number outside the range the model was trained
    on (the schema's min/max) is accepted and noted in ``warnings``: the model
    extrapolates there, and the panel says so.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()) or (isinstance(raw, float) and math.isnan(raw)):
        return None
    unit = f" {field.unit}" if field.unit else ""
    if field.kind == "numeric":
        if isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, (int, float)):
            value = float(raw)
        else:
            text = str(raw).strip().replace(",", ".")
            var = field.variable
            if var is not None and var.kind == "boolean":
                return default_dictionary().boolean(var, text, patient=patient, column=field.name)
            try:
                value = float(text)
            except ValueError:
                if var is None or var.kind != "numeric" or not _LEADING_NUMBER.match(text):
                    raise InputError(f"{raw!r} is not a number (expected{unit or ' a number'})",
                                     patient=patient, column=field.name) from None
                # a number written with a unit the dictionary knows ("35 mm" for a size in cm)
                value = default_dictionary().number(var, text, patient=patient, column=field.name)
        if not math.isfinite(value):
            raise InputError(f"{raw!r} is not a finite number", patient=patient, column=field.name)
        if value < 0 and field.non_negative:
            raise InputError(f"{value:g}{unit} is negative; {field.name} cannot be below 0",
                             patient=patient, column=field.name)
        lo, hi = field.min, field.max
        if warnings is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            warnings.append(f"{field.name} = {value:g}{unit} is outside the training range "
                            f"{_fmt(lo)} to {_fmt(hi)}{unit}: the model extrapolates")
        return value
    text = str(raw).strip()
    if field.levels is None:
        return text
    for level in field.levels:
        if level.lower() == text.lower():
            return level
    var = field.variable
    term = None
    if var is not None and var.kind == "boolean":
        b = default_dictionary().boolean(var, text, patient=patient, column=field.name)
        term = None if math.isnan(b) else ("yes" if b == 1.0 else "no")
    elif var is not None and var.kind == "category":
        try:
            term = default_dictionary().category(var, text, patient=patient, column=field.name)
        except InputError:
            term = None
    if term is not None and term in field.levels:
        return term
    read = f" (read as {term!r})" if term is not None and term != UNKNOWN else ""
    raise InputError(f"{text!r}{read} is not one of {', '.join(field.levels)}", patient=patient, column=field.name)


def _fmt(v: float | None) -> str:
    return "-inf" if v is None else f"{v:g}"


def parse_values(fields: list[ClinicalField], values: Mapping[str, Any], patient: str,
                 warnings: list[str] | None = None) -> dict[str, Any]:
    """Check every field; unknown keys are refused (a typo must not silently drop a value).

    Returns
    -------
    dict name -> float | str | None (None = missing, left to the model's imputation).
    """
    known = {f.name for f in fields}
    extra = sorted(set(values) - known)
    if extra:
        raise InputError(f"unknown clinical field(s) {', '.join(extra)}; the model expects "
                         f"{', '.join(sorted(known))}", patient=patient)
    return {f.name: parse_value(f, values.get(f.name), patient, warnings) for f in fields}


def clinical_row(fields: list[ClinicalField], parsed: Mapping[str, Any], patient: str) -> Any:
    """The one-row clinical table for the model: ``patient_id`` + the schema's columns, shape (1, 1 + n)."""
    row = {"patient_id": patient}
    for f in fields:
        v = parsed.get(f.name)
        row[f.name] = (float("nan") if f.kind == "numeric" else None) if v is None else v
    return pd.DataFrame([row])


def size_field(fields: list[ClinicalField]) -> ClinicalField | None:
    """The tumour-size field, if the model has one."""
    return next((f for f in fields if f.role == "size" and f.kind == "numeric"), None)


def size_from_diameter(field: ClinicalField, diameter_mm: float) -> float:
    """The segment's largest diameter in the field's unit (cm unless the unit says mm), 1 decimal."""
    unit = (field.unit or "cm").strip().lower()
    if unit == "mm" or field.name.lower().endswith("_mm"):
        return round(diameter_mm, 0)
    return round(diameter_mm / 10.0, 1)


def nih_arguments(fields: list[ClinicalField], parsed: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Arguments of ``modified_nih`` from the parsed form, and the roles still missing.

    Mitoses per 5 mm2 are taken as per 50 HPF (the modified NIH scheme's own equivalence).
    """
    by_role = {f.role: f for f in fields if f.role}
    args: dict[str, Any] = {}
    missing: list[str] = []
    for role, arg in (("size", "size_cm"), ("mitoses", "mitoses_per_50hpf"), ("site", "site"),
                      ("rupture", "rupture")):
        f = by_role.get(role)
        value = parsed.get(f.name) if f else None
        if value is None:
            if role == "rupture":
                args[arg] = False  # not recorded: the NIH table is read without rupture
                continue
            missing.append(role)
            continue
        if role == "size" and f is not None and ((f.unit or "").lower() == "mm" or f.name.endswith("_mm")):
            value = float(value) / 10.0
        if role == "rupture":
            value = default_dictionary().boolean("rupture", value) == 1.0
        elif role in ("size", "mitoses"):
            value = float(value)
        args[arg] = value
    return args, missing
