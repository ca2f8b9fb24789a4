"""TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378): where the cohort report or the model bundle
answers each item, and what only the authors can supply. One table, rendered by the cohort template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTHORS = "to be supplied by the authors"
REFERENCE = ("Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting clinical "
             "prediction models that use regression or machine learning methods. BMJ 2024;385:e078378")


@dataclass(frozen=True)
class Item:
    """One checklist item: report sections (anchors) and bundle fields that answer it, and what is left."""

    item: str
    topic: str
    sections: tuple[str, ...] = ()
    bundle: tuple[str, ...] = ()
    note: str = ""
    authors: str = ""


TRIPOD_ITEMS: tuple[Item, ...] = (
    Item("1", "Title", authors="identify the study as developing and/or evaluating a prediction model, the target "
                               "population and the outcome"),
    Item("2", "Abstract", authors="structured abstract (TRIPOD+AI for Abstracts)"),
    Item("3a", "Background: healthcare context", authors="prognostic setting, rationale, existing models "
                                                         "(modified NIH, AFIP, MSKCC nomogram)"),
    Item("3b", "Background: target population and intended use", authors="patients after GIST resection, the "
                                                                         "adjuvant-therapy decision, intended users"),
    Item("3c", "Background: health inequalities", authors="known inequalities between sociodemographic groups"),
    Item("4", "Objectives", authors="development, external validation or both"),
    Item("5a", "Data: sources", bundle=("model.json info.cohort",),
         authors="source of each cohort, rationale and representativeness"),
    Item("5b", "Data: dates", authors="start and end of accrual and end of follow-up"),
    Item("6a", "Participants: setting", authors="care setting, number and location of centres"),
    Item("6b", "Participants: eligibility", authors="inclusion and exclusion criteria"),
    Item("6c", "Participants: treatments", sections=("methods", "dca"), bundle=("model.json info.treatment",),
         note="treatment variables in or out of the model", authors="treatments received (e.g. adjuvant TKI)"),
    Item("7", "Data preparation", sections=("methods",),
         bundle=("model.json info.parameters", "model.json pipelines.*.preprocessor"),
         authors="image and slide quality checks; whether similar across sociodemographic groups"),
    Item("8a", "Outcome: definition", sections=("table1",), note="recurrence-free survival in months, 3- and 5-year "
                                                                 "horizons", authors="definition of recurrence, how "
                                                                                     "and when assessed"),
    Item("8b", "Outcome: assessors", authors="qualifications of outcome assessors"),
    Item("8c", "Outcome: blinding", authors="blinding of outcome assessment"),
    Item("9a", "Predictors: choice", sections=("methods",),
         bundle=("model.json input_columns", "model.json info.cohort.per_modality"),
         authors="why these candidate predictors"),
    Item("9b", "Predictors: definition", sections=("features", "methods"),
         bundle=("model.json clinical_schema", "model.json info.parameters"),
         note="radiomics parameter-file hash and software versions in Methods",
         authors="how and when CT, slides and clinical data were obtained; blinding"),
    Item("9c", "Predictors: assessors", authors="who segmented tumours and annotated slides, and their training"),
    Item("10", "Sample size", bundle=("model.json info.cohort",), note="n and events per modality",
         authors="how the study size was arrived at and why it suffices"),
    Item("11", "Missing data", sections=("methods", "formula"),
         bundle=("model.json fusion", "model.json info.cohort.id_mismatches"),
         note="training-median imputation in each fold; a patient missing a modality is scored by the subset "
              "fusion model (flagged partial)"),
    Item("12a", "Analytical methods: use of the data", sections=("methods", "cindex"),
         bundle=("model.json cv_metrics",), note="cross-validated development; external cohort scored frozen"),
    Item("12b", "Analytical methods: predictor handling", sections=("methods",),
         bundle=("model.json pipelines.*.preprocessor",)),
    Item("12c", "Analytical methods: model, building, tuning, internal validation", sections=("methods",),
         bundle=("model.json info.parameters", "model.json cv_metrics")),
    Item("12d", "Analytical methods: heterogeneity across clusters",
         authors="heterogeneity across centres (not assessed by gistrisk)"),
    Item("12e", "Analytical methods: performance measures",
         sections=("methods", "cindex", "km", "tdauc", "calibration", "dca")),
    Item("12f", "Analytical methods: model updating", sections=("methods",),
         note="none: the external cohort is scored by the frozen model"),
    Item("12g", "Analytical methods: how predictions were calculated", sections=("formula", "nomogram"),
         bundle=("model.json pipelines", "model.json fusion")),
    Item("13", "Class imbalance", sections=("methods",), note="none used: Cox models of time to recurrence"),
    Item("14", "Fairness", authors="approaches to model fairness and their rationale"),
    Item("15", "Model output", sections=("formula", "nomogram", "km"), bundle=("model.json fusion.*.cutoff",),
         note="fused risk, predicted RFS at 1, 3 and 5 years, risk group at the development cut-off"),
    Item("16", "Training versus evaluation", sections=("table1",),
         authors="differences in setting, eligibility, outcome and predictor measurement"),
    Item("17", "Ethical approval", authors="ethics committee and consent or waiver"),
    Item("18a", "Open science: funding", authors="funding source and role of funders"),
    Item("18b", "Open science: conflicts of interest", authors="declarations of all authors"),
    Item("18c", "Open science: protocol", authors="where the protocol is, or that none was prepared"),
    Item("18d", "Open science: registration", authors="registry and number, or not registered"),
    Item("18e", "Open science: data sharing", authors="availability of the study data"),
    Item("18f", "Open science: code sharing", sections=("methods",), bundle=("model.json info.versions",),
         note="software versions and file hashes", authors="where the analysis code is available"),
    Item("19", "Patient and public involvement", authors="involvement, or a statement of none"),
    Item("20a", "Participants: flow", sections=("table1", "cindex"),
         bundle=("model.json info.cohort", "model.json info.cohort.id_mismatches"),
         authors="flow diagram with exclusions"),
    Item("20b", "Participants: characteristics", sections=("table1",)),
    Item("20c", "Participants: comparison with development data", sections=("table1",)),
    Item("21", "Model development: participants and events per analysis", sections=("cindex", "formula"),
         bundle=("model.json info.cohort.per_modality", "model.json cv_metrics")),
    Item("22", "Model specification", sections=("features", "formula", "nomogram"),
         bundle=("model.json pipelines", "model.json fusion")),
    Item("23a", "Model performance with confidence intervals", sections=("cindex", "km", "tdauc", "calibration"),
         authors="performance in key subgroups"),
    Item("23b", "Model performance: heterogeneity across clusters", authors="if examined"),
    Item("24", "Model updating", sections=("methods",), note="none (frozen model)"),
    Item("25", "Interpretation", authors="overall interpretation, including fairness"),
    Item("26", "Limitations", sections=("features", "methods"),
         note="post-selection hazard ratios; deviations from the paper", authors="limitations and their effects"),
    Item("27a", "Usability: poor-quality or unavailable inputs", sections=("formula",),
         bundle=("model.json clinical_schema", "model.json info.model_card.input_ranges"),
         note="missing modalities scored by subset models and flagged; inputs outside the training range are "
              "flagged"),
    Item("27b", "Usability: user interaction and expertise",
         authors="tumour segmentation in 3D Slicer and slide annotation in QuPath: who, with what training"),
    Item("27c", "Usability: next steps", authors="future research, applicability and generalisability"),
)


def checklist_rows(sections: dict[str, str]) -> list[dict[str, Any]]:
    """Rows for the template: item, topic, links ``[(anchor, heading)]``, bundle fields, note, answer.

    Raises
    ------
    KeyError when an item points to a section the report does not have.
    """
    rows = []
    for it in TRIPOD_ITEMS:
        links = [(key, sections[key]) for key in it.sections]
        rows.append({"item": it.item, "topic": it.topic, "links": links, "bundle": list(it.bundle),
                     "note": it.note, "answer": f"{AUTHORS}: {it.authors}" if it.authors else ""})
    return rows
