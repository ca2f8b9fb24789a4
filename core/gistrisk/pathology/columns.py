"""The slide-feature column names (``path_0000`` ..): one rule for the features tables and the
simulated cohort's emulated tables. No torch here, so table-level code can import it cheaply."""

from __future__ import annotations

FEATURE_PREFIX = "path_"

#: Width of the paper's ResNet50 pooled features: the default slide-feature table's.
RESNET50_DIM = 2048


def feature_columns(dim: int) -> list[str]:
    """The slide-feature column names for a D-dimensional embedding: ``path_0000`` .. ``path_{D-1}``
    (zero-padded to at least 4 digits, so names sort in order). The one rule for these columns."""
    width = max(4, len(str(dim - 1)))
    return [f"{FEATURE_PREFIX}{i:0{width}d}" for i in range(dim)]
