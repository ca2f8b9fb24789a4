"""gistrisk: multimodal recurrence-free survival models for GIST (CT radiomics, H&E, clinical)."""

__version__ = "0.1.0"
