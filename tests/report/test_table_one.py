"""Table 1 on a small table whose numbers are worked out by hand."""

import numpy as np
import pandas as pd

from gistrisk.report.table_one import CohortInput, first_rows, table_one


def _cohorts():
    y = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "time": [10.0, 20.0, 30.0, 40.0], "event": [1, 0, 1, 0]})
    clin = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "age": [50, 60, 70, np.nan],
                         "sex": ["male", "female", "male", "male"], "rupture": [0, 1, 0, 0]})
    ext_y = pd.DataFrame({"time": [5.0, 6.0], "event": [1, 1]}, index=pd.Index(["x", "y"], name="patient_id"))
    ext_clin = pd.DataFrame({"age": [40.0, 80.0], "sex": ["female", "female"]}, index=ext_y.index)
    return {"Dev": CohortInput(y, clin), "Ext": CohortInput(ext_y, ext_clin)}


def _cell(t, variable, level, cohort):
    row = t[(t["variable"] == variable) & (t["level"] == level)]
    assert len(row) == 1, (variable, level)
    return row.iloc[0][cohort]


def test_outcome_rows():
    t = table_one(_cohorts())
    assert _cell(t, "Patients, n", "", "Dev") == "4"
    assert _cell(t, "Recurrence or death, n (%)", "", "Dev") == "2 (50.0%)"
    assert _cell(t, "Censored, %", "", "Dev") == "50.0"
    # reverse KM: censorings at 20 (3 at risk -> 2/3) and 40 (1 at risk -> 0): median 40
    assert _cell(t, "Median follow-up (reverse KM), months", "", "Dev") == "40.0"
    assert _cell(t, "Censored, %", "", "Ext") == "0.0"
    # nobody censored: the censoring curve never reaches 0.5
    assert _cell(t, "Median follow-up (reverse KM), months", "", "Ext") == "not reached"


def test_numeric_categorical_and_missing():
    t = table_one(_cohorts())
    assert _cell(t, "Age, years", "median [IQR]", "Dev") == "60.0 [55.0–65.0]"
    assert _cell(t, "Age, years", "missing, n", "Dev") == "1"
    assert _cell(t, "Age, years", "missing, n", "Ext") == "0"
    assert _cell(t, "Age, years", "median [IQR]", "Ext") == "60.0 [50.0–70.0]"
    assert _cell(t, "Sex", "male", "Dev") == "3 (75.0%)"
    assert _cell(t, "Sex", "female", "Dev") == "1 (25.0%)"
    assert _cell(t, "Sex", "male", "Ext") == "0 (0.0%)"  # a level only the other cohort has
    assert _cell(t, "Sex", "female", "Ext") == "2 (100.0%)"
    # a 0/1 column is categorical; a cohort without the column shows a dash
    assert _cell(t, "Tumour rupture", "1", "Dev") == "1 (25.0%)"
    assert _cell(t, "Tumour rupture", "1", "Ext") == "—"
    # the paper's order: sex before age; each variable's name printed once
    vars_ = t["variable"][first_rows(t)].tolist()
    assert vars_.index("Sex") < vars_.index("Age, years") < vars_.index("Tumour rupture")
    assert sum(first_rows(t)) == len(vars_) == len(set(vars_))


def test_development_column_from_bundle_summary():
    c = _cohorts()
    t = table_one({"Development": CohortInput(None, summary={"n_outcomes": 10, "events": 3,
                                                            "median_follow_up_months": 24.5}),
                   "Validation": c["Ext"]})
    assert _cell(t, "Patients, n", "", "Development") == "10"
    assert _cell(t, "Recurrence or death, n (%)", "", "Development") == "3 (30.0%)"
    assert _cell(t, "Median follow-up (reverse KM), months", "", "Development") == "24.5†"
    assert _cell(t, "Age, years", "median [IQR]", "Development") == "—"
