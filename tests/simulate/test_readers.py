"""The simulated cohort goes through the product's own readers, as real data does."""

from __future__ import annotations

from pathlib import Path

from gistrisk.simulate.ct_write import SEGMENT_NAME


def test_radiomics_manifest_reader_resolves_every_case(cohort):
    from gistrisk.radiomics.manifest import read_manifest

    cases = read_manifest(cohort["development_radiomics_manifest"])
    assert len(cases) > 0
    for case in cases:
        assert Path(case["image"]).is_file() and Path(case["mask"]).is_file()
        assert case["segment"] == SEGMENT_NAME


def test_slide_manifest_reader_resolves_slides_and_annotations(cohort):
    from gistrisk.pathology.manifest import read_manifest

    entries = read_manifest(cohort["development_slide_manifest"])
    assert entries and all(Path(e.slide).is_file() and e.mpp == 0.5 for e in entries)
    annotated = [e for e in entries if e.annotations]
    assert annotated and all(Path(e.annotations).is_file() for e in annotated)


def test_survival_tables_load_clinical_and_outcomes(cohort):
    from gistrisk.tables import load_features, load_outcomes

    clin = load_features(cohort["development_clinical"], "clinical")
    out = load_outcomes(cohort["development_outcomes"])
    assert list(clin.index) == list(out.index)
    assert set(out["event"].unique()) <= {0, 1} and (out["time"] > 0).all()
