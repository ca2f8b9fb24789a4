"""gistrisk.pathology (see issue)."""
