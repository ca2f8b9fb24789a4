"""Modified NIH (Joensuu 2008): every row of the table and every boundary."""

import pytest

from gistrisk.clinical.nih import afip_risk, modified_nih


@pytest.mark.parametrize("size, mit, site, rupture, expected", [
    # very low: <= 2.0 cm, <= 5 mitoses
    (2.0, 5, "stomach", False, "very low"), (0.5, 0, "small intestine", False, "very low"),
    # low: 2.1-5.0 cm, <= 5
    (2.01, 5, "stomach", False, "low"), (5.0, 5, "rectum", False, "low"),
    # intermediate: < 5.0 cm (here <= 2.0 after high rules) with 6-10 mitoses, any site
    (2.0, 6, "small intestine", False, "intermediate"), (1.0, 10, "rectum", False, "intermediate"),
    # intermediate: gastric 2.1-5.0 with > 5
    (2.1, 6, "stomach", False, "intermediate"), (5.0, 10, "gastric", False, "intermediate"),
    # intermediate: gastric 5.1-10.0 with <= 5
    (5.1, 5, "stomach", False, "intermediate"), (10.0, 0, "stomach", False, "intermediate"),
    # high: rupture
    (1.0, 0, "stomach", True, "high"),
    # high: > 10 cm
    (10.01, 0, "stomach", False, "high"),
    # high: > 10 mitoses
    (1.0, 11, "stomach", False, "high"), (4.0, 11, "stomach", False, "high"),
    # high: > 5.0 cm and > 5 mitoses
    (5.1, 6, "stomach", False, "high"),
    # high: non-gastric 2.1-5.0 with > 5 (overlaps the intermediate row: high wins)
    (2.1, 6, "small intestine", False, "high"), (5.0, 10, "duodenum", False, "high"),
    # high: non-gastric 5.1-10.0 with <= 5
    (5.1, 0, "rectum", False, "high"), (10.0, 5, "small intestine", False, "high"),
])
def test_modified_nih_rows_and_boundaries(size, mit, site, rupture, expected):
    assert modified_nih(size, mit, site, rupture) == expected


@pytest.mark.parametrize("bad", [(-1, 3), (2, float("nan")), (None, 1)])
def test_modified_nih_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        modified_nih(bad[0], bad[1], "stomach")


@pytest.mark.parametrize("size, mit, site, expected", [
    (2.0, 5, "stomach", ("none", 0.0)), (3.0, 5, "stomach", ("very low", 1.9)), (3.0, 5, "duodenum", ("low", 4.3)),
    (7.0, 5, "small intestine", ("insufficient data", None)), (11, 5, "rectum", ("high", 57.0)),
    (1.5, 6, "rectum", ("high", 54.0)), (4.0, 8, "stomach", ("moderate", 16.0)), (8.0, 8, "duodenum", ("high", 85.0)),
    (12.0, 8, "stomach", ("high", 86.0)), (12.0, 8, "oesophagus", ("not tabulated", None)),
])
def test_afip(size, mit, site, expected):
    assert afip_risk(size, mit, site) == expected
