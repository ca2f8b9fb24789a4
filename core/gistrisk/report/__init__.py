"""Self-contained HTML reports (cohort and per patient)."""
