"""The clinical form: fields from a model's schema, checked values, NIH inputs."""

from __future__ import annotations

import math

import pytest

from gistrisk.errors import InputError
from SlicerGISTRiskLib import clinical_form as cf

SCHEMA = [
    {"name": "tumour_size_cm", "kind": "numeric", "levels": None, "unit": "cm", "min": 2.2, "max": 17.3},
    {"name": "mitoses_per_5mm2", "kind": "numeric", "levels": None, "unit": "per 5 mm2 (50 HPF)", "min": 0.0,
     "max": 15.0},
    {"name": "site", "kind": "categorical", "levels": ["colorectum", "small intestine", "stomach"], "unit": None,
     "min": None, "max": None},
]


@pytest.fixture
def fields():
    return cf.fields_from_schema(SCHEMA)


def test_fields_carry_role_unit_and_label(fields):
    assert [f.role for f in fields] == ["size", "mitoses", "site"]
    assert fields[0].label == "tumour size cm (cm)"
    form = cf.form_fields(fields)
    assert [f.name for f in form[3:]] == ["rupture"]  # only the NIH input the model lacks is added
    assert form[3].label.endswith("[NIH only]") and not form[3].model_input


def test_values_are_parsed_with_decimal_comma_and_level_case(fields):
    parsed = cf.parse_values(fields, {"tumour_size_cm": "6,5", "mitoses_per_5mm2": 8, "site": "Stomach"}, "P1")
    assert parsed == {"tumour_size_cm": 6.5, "mitoses_per_5mm2": 8.0, "site": "stomach"}


def test_empty_values_are_missing(fields):
    parsed = cf.parse_values(fields, {"tumour_size_cm": " ", "site": ""}, "P1")
    assert parsed == {"tumour_size_cm": None, "mitoses_per_5mm2": None, "site": None}
    row = cf.clinical_row(fields, parsed, "P1")
    assert list(row.columns) == ["patient_id", "tumour_size_cm", "mitoses_per_5mm2", "site"]
    assert math.isnan(row["tumour_size_cm"].iloc[0])


def test_negative_size_is_refused_naming_patient_and_field(fields):
    with pytest.raises(InputError, match=r"patient P7, column 'tumour_size_cm': -3 cm is negative"):
        cf.parse_values(fields, {"tumour_size_cm": "-3"}, "P7")


def test_mitoses_as_text_is_refused(fields):
    with pytest.raises(InputError, match=r"column 'mitoses_per_5mm2': 'twelve' is not a number"):
        cf.parse_values(fields, {"mitoses_per_5mm2": "twelve"}, "P7")


def test_unknown_level_and_unknown_field_are_refused(fields):
    with pytest.raises(InputError, match="'liver' is not one of colorectum, small intestine, stomach"):
        cf.parse_values(fields, {"site": "liver"}, "P7")
    with pytest.raises(InputError, match="unknown clinical field.*tumor_size"):
        cf.parse_values(fields, {"tumor_size": 4}, "P7")


def test_outside_training_range_is_a_warning_not_an_error(fields):
    warnings: list[str] = []
    parsed = cf.parse_values(fields, {"tumour_size_cm": 22}, "P1", warnings)
    assert parsed["tumour_size_cm"] == 22.0
    assert len(warnings) == 1 and "outside the training range 2.2 to 17.3" in warnings[0]


def test_size_from_diameter_follows_the_unit(fields):
    assert cf.size_from_diameter(fields[0], 69.52) == 7.0
    mm = cf.ClinicalField("size_mm", "numeric", unit="mm")
    assert cf.size_from_diameter(mm, 69.52) == 70.0


def test_nih_arguments_from_the_form(fields):
    form = cf.form_fields(fields)
    parsed = cf.parse_values(form, {"tumour_size_cm": "6", "mitoses_per_5mm2": "3", "site": "stomach",
                                    "rupture": "yes"}, "P1")
    args, missing = cf.nih_arguments(form, parsed)
    assert missing == []
    assert args == {"size_cm": 6.0, "mitoses_per_50hpf": 3.0, "site": "stomach", "rupture": True}
    args, missing = cf.nih_arguments(form, cf.parse_values(form, {"tumour_size_cm": "6"}, "P1"))
    assert missing == ["mitoses", "site"] and args["rupture"] is False


def test_malformed_schema_is_refused():
    with pytest.raises(InputError, match="clinical schema entry 0 is malformed"):
        cf.fields_from_schema([{"name": "x", "kind": "date"}])


def test_the_form_reads_values_through_the_clinical_dictionary(fields):
    form = cf.form_fields(fields)
    parsed = cf.parse_values(form, {"tumour_size_cm": "35 mm", "mitoses_per_5mm2": "7 /50 HPF", "site": "胃窦",
                                    "rupture": "N"}, "P1")
    assert parsed == {"tumour_size_cm": 3.5, "mitoses_per_5mm2": 7.0, "site": "stomach", "rupture": "no"}
    args, missing = cf.nih_arguments(form, parsed)
    assert missing == [] and args["site"] == "stomach" and args["rupture"] is False
    parsed = cf.parse_values(form, {"site": "C16.3", "rupture": "ruptured"}, "P1")
    assert parsed["site"] == "stomach" and cf.nih_arguments(form, parsed)[0]["rupture"] is True
    with pytest.raises(InputError, match=r"'Oesophageal' \(read as 'oesophagus'\) is not one of colorectum"):
        cf.parse_values(form, {"site": "Oesophageal"}, "P1")
    with pytest.raises(InputError, match="unit '/10HPF'"):
        cf.parse_values(form, {"mitoses_per_5mm2": "3 /10HPF"}, "P1")
