"""gistrisk.radiomics (see issue)."""
