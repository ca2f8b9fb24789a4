"""The clinical data dictionary on values as hospital exports write them."""

import math

import pandas as pd
import pytest

from gistrisk.clinical.dictionary import UNKNOWN, load_dictionary
from gistrisk.clinical.nih import afip_risk, is_gastric, modified_nih, nih_categories
from gistrisk.errors import InputError

GASTRIC = ["stomach", "Stomach", "STOMACH", "gastric", "Stomach (antrum)", "gastric body", "Gastric Fundus", "cardia",
           "GEJ", "gastro-oesophageal junction", "C16.3", "c16", "C16.0", "胃", "胃窦", "贲门", "stomach, body"]
NON_GASTRIC = {"Small Intestine": "small intestine", "jejunum": "small intestine", "C17.2": "small intestine",
               "小肠": "small intestine", "duodenal": "duodenum", "C17.0": "duodenum", "十二指肠": "duodenum",
               "C18.7": "colorectum", "结肠": "colorectum", "C20.9": "rectum", "直肠": "rectum",
               "esophagus": "oesophagus", "C15.5": "oesophagus", "食管": "oesophagus", "mesentery": "extra-gastrointestinal",
               "omentum": "extra-gastrointestinal", "C48.1": "extra-gastrointestinal", "腹膜后": "extra-gastrointestinal"}


@pytest.fixture(scope="module")
def d():
    return load_dictionary()


@pytest.mark.parametrize("site", GASTRIC)
def test_gastric_sub_sites_codes_and_chinese_terms_are_gastric_for_nih(site):
    # 3 cm, 7 mitoses: intermediate for a gastric tumour, high elsewhere (Joensuu 2008)
    assert is_gastric(site) is True
    assert modified_nih(3.0, 7, site) == "intermediate"
    assert modified_nih(7.0, 3, site) == "intermediate"


@pytest.mark.parametrize("site, term", sorted(NON_GASTRIC.items()))
def test_other_sites_map_to_their_term(d, site, term):
    assert d.category("site", site) == term
    assert modified_nih(3.0, 7, site) == "high"


def test_unknown_site_is_refused_naming_the_value(d):
    with pytest.raises(InputError, match=r"patient P9, column 'Location': value 'liver' is not in the clinical "
                                         r"dictionary for 'site'"):
        d.category("site", "liver", patient="P9", column="Location")
    with pytest.raises(InputError, match="'liver'"):
        modified_nih(3.0, 7, "liver")
    with pytest.raises(InputError):
        d.category("site", "C17")  # a code without the sub-site that decides duodenum vs jejunum/ileum


def test_explicit_unknown_site_leaves_only_site_dependent_cells_unclassified():
    assert modified_nih(3.0, 7, "unknown") is None        # gastric: intermediate, other: high
    assert modified_nih(1.0, 2, "不详") == "very low"       # the same for every site
    assert modified_nih(12.0, 2, None) == "high"
    assert afip_risk(3.0, 2, "unknown") == ("unclassified", None)


def test_afip_reads_sub_sites():
    assert afip_risk(3.0, 5, "Stomach (antrum)") == ("very low", 1.9)
    assert afip_risk(3.0, 5, "C17.0") == ("low", 4.3)
    assert afip_risk(11.0, 5, "直肠") == ("high", 57.0)
    assert afip_risk(11.0, 5, "C18.2") == ("not tabulated", None)


@pytest.mark.parametrize("raw, expected", [("Y", 1.0), ("yes", 1.0), ("ruptured", 1.0), ("是", 1.0), ("TRUE", 1.0),
                                           (1, 1.0), ("N", 0.0), ("no rupture", 0.0), ("否", 0.0), (0, 0.0)])
def test_yes_no_spellings(d, raw, expected):
    assert d.boolean("rupture", raw) == expected


def test_unrecognised_yes_no_is_refused(d):
    with pytest.raises(InputError, match=r"patient P1, column 'rupture': value 'maybe'"):
        d.boolean("rupture", "maybe", patient="P1")
    with pytest.raises(InputError):
        d.boolean("rupture", 2)


@pytest.mark.parametrize("var, raw, expected", [
    ("tumour_size_cm", "35 mm", 3.5), ("tumour_size_cm", "3.5cm", 3.5), ("tumour_size_cm", 3.5, 3.5),
    ("mitoses_per_5mm2", "3 /5mm2", 3.0), ("mitoses_per_5mm2", "7/50 HPF", 7.0), ("ki67_percent", "15%", 15.0),
    ("hemoglobin_g_l", "12.5 g/dL", 125.0), ("age", "65岁", 65.0)])
def test_numbers_with_units_are_converted(d, var, raw, expected):
    assert d.number(var, raw) == pytest.approx(expected)


@pytest.mark.parametrize("var, raw, pattern", [
    ("mitoses_per_5mm2", "3 /10HPF", "unit '/10HPF' is not one the dictionary knows"),
    ("tumour_size_cm", "85", "outside the plausible range 0 to 60 cm; if it is in another unit"),
    ("tumour_size_cm", "inf", "is not a (finite )?number"), ("ki67_percent", "<1", "is not a number"),
])
def test_numbers_that_cannot_be_read_are_refused(d, var, raw, pattern):
    with pytest.raises(InputError, match=pattern):
        d.number(var, raw, patient="P3")


def test_a_table_is_normalised_and_reports_what_it_mapped(d):
    df = pd.DataFrame({"Site": ["Stomach (antrum)", "C17.2", "胃", None], "rupture": ["Y", "N", "ruptured", ""],
                       "tumour_size_cm": ["35 mm", 4.0, "6 cm", None], "hospital_code": ["a", "b", "c", "d"]},
                      index=pd.Index(["P1", "P2", "P3", "P4"], name="patient_id"))
    out, report = d.normalise_table(df, "clin.csv")
    assert out["Site"].tolist()[:3] == ["stomach", "small intestine", "stomach"] and out["Site"].iloc[3] is None
    assert out["rupture"].tolist()[:3] == [1.0, 0.0, 1.0] and math.isnan(out["rupture"].iloc[3])
    assert out["tumour_size_cm"].tolist()[:3] == [3.5, 4.0, 6.0]
    assert report["mapped"]["Site"] == {"Stomach (antrum) -> stomach": 1, "C17.2 -> small intestine": 1,
                                        "胃 -> stomach": 1}
    assert report["not_in_dictionary"] == ["hospital_code"]
    assert out["hospital_code"].tolist() == ["a", "b", "c", "d"]


def test_unknown_mode_keeps_unrecognised_categories_as_unknown(tmp_path):
    ext = tmp_path / "mine.yaml"
    ext.write_text("unrecognised: unknown\n")
    d = load_dictionary([ext])
    assert d.category("site", "liver") == UNKNOWN
    out, report = d.normalise_table(pd.DataFrame({"site": ["liver", "stomach"]}, index=["P1", "P2"]), "c.csv")
    assert report["unknown"] == {"site": ["P1"]}
    with pytest.raises(InputError):  # yes/no and numbers are never guessed
        d.boolean("rupture", "maybe")


def test_user_yaml_adds_synonyms_and_variables_and_refuses_conflicts(tmp_path):
    ext = tmp_path / "mine.yaml"
    ext.write_text("variables:\n  site:\n    values:\n      stomach: {synonyms: [magen]}\n"
                   "  ecog:\n    columns: [ecog_ps]\n    type: numeric\n    min: 0\n    max: 5\n")
    d = load_dictionary([ext])
    assert d.category("site", "Magen") == "stomach"
    assert d.variable_for_column("ECOG PS").name == "ecog"
    with pytest.raises(InputError, match="outside the plausible range"):
        d.number("ecog", 7)
    again = load_dictionary(record=d.record())  # a bundle carries the extension
    assert again.category("site", "magen") == "stomach" and again.sha256 == d.sha256
    bad = tmp_path / "bad.yaml"
    bad.write_text("variables:\n  site:\n    values:\n      small intestine: {synonyms: [antrum]}\n")
    with pytest.raises(InputError, match="'antrum' means both 'stomach' and 'small intestine'"):
        load_dictionary([bad])


def test_nih_categories_of_a_hospital_table():
    clin = pd.DataFrame({"部位": ["胃窦", "C16.3", "Small Intestine", "unknown", "liver"],
                         "Tumor Size": ["30 mm", "3", 3.0, 3.0, 3.0],
                         "mitoses": ["7 /5mm2", 7, 7, 7, 7],
                         "rupture": ["N", "no", "N", "N", "N"]},
                        index=pd.Index(["A", "B", "C", "D", "E"], name="patient_id"))
    with pytest.raises(InputError, match=r"patient E, column '部位': value 'liver'"):
        nih_categories(clin, source="clin.csv")
    nih = nih_categories(clin.iloc[:4])
    assert nih.to_dict() == {"A": "intermediate", "B": "intermediate", "C": "high"}
    assert nih.attrs["unclassified"] == ["D"]
    ruptured = clin.iloc[:1].assign(rupture="ruptured")
    assert nih_categories(ruptured).to_dict() == {"A": "high"}
