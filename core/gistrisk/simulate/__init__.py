"""Simulated multimodal GIST cohorts with a known ground truth."""
