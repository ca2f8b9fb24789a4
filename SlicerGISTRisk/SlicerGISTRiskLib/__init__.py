"""Non-GUI helpers of the SlicerGISTRisk module.

mrml_convert: MRML nodes <-> SimpleITK images and DataFrames; segmentation_setup: the tumour
segment and the grow-from-seeds start; clinical_form: the form from a model's clinical schema;
prediction / workflow: one case from nodes to MRML results; radiomics_step: radiomics with
progress and cancel; radiomics_check: the phantom check against the model's record; background_cohort: the
background batch; dependencies: install on consent; report_html: Export report; install_layout:
the install tree from install_manifest.txt. Only ``dependencies`` and ``install_layout`` may be imported before
``gistrisk`` is installed.
"""
