"""The TRIPOD+AI checklist (Collins et al., BMJ 2024): one table in gistrisk.report.tripod, rendered in the report."""

import re

import pytest

from gistrisk.report.cohort_report import SECTIONS
from gistrisk.report.tripod import AUTHORS, TRIPOD_ITEMS, checklist_rows

#: items only the authors can answer (title, ethics, funding, data sources, eligibility, sample size, PPI, ...)
AUTHOR_ONLY = ("1", "2", "5a", "5b", "6a", "6b", "10", "17", "18a", "18b", "18c", "18d", "19")


def _number(item: str) -> int:
    return int(re.match(r"\d+", item).group())


def test_every_item_1_to_27_once_with_an_answer():
    items = [it.item for it in TRIPOD_ITEMS]
    assert len(items) == len(set(items))
    assert sorted({_number(i) for i in items}) == list(range(1, 28))
    assert [_number(i) for i in items] == sorted(_number(i) for i in items)  # checklist order
    for it in TRIPOD_ITEMS:
        assert it.topic and (it.sections or it.bundle or it.authors), it.item
    by_item = {it.item: it for it in TRIPOD_ITEMS}
    for i in AUTHOR_ONLY:
        assert by_item[i].authors and not by_item[i].sections, i
    # the ones the report answers point to their sections
    assert "table1" in by_item["20b"].sections and "cindex" in by_item["23a"].sections
    assert "methods" in by_item["12c"].sections and "formula" in by_item["22"].sections
    assert any("cv_metrics" in b for b in by_item["12c"].bundle)
    assert any("clinical_schema" in b for b in by_item["27a"].bundle)


def test_rows_say_who_answers():
    rows = checklist_rows(SECTIONS)
    assert [r["item"] for r in rows] == [it.item for it in TRIPOD_ITEMS]
    r1 = next(r for r in rows if r["item"] == "1")
    assert r1["links"] == [] and AUTHORS in r1["answer"]
    r12 = next(r for r in rows if r["item"] == "12c")
    assert ("methods", SECTIONS["methods"]) in r12["links"] and r12["answer"] == ""
    with pytest.raises(KeyError):  # a section the report does not have is a programming error, not a silent gap
        checklist_rows({"methods": "Methods"})


@pytest.mark.slow
def test_report_has_the_checklist_and_every_link_lands(report, section):
    _, html, _ = report
    sec = section(html, "tripod")
    assert "TRIPOD+AI" in sec and "Collins" in sec
    for n in range(1, 28):
        assert re.search(rf"<td>{n}[a-g]?</td>", sec), n
    ids = set(re.findall(r'id="([^"]+)"', html))
    targets = re.findall(r'href="#([^"]+)"', sec)
    assert targets and set(targets) <= ids
    assert sec.count(AUTHORS) >= len(AUTHOR_ONLY)
    assert "model.json" in sec and "info.cohort" in sec
