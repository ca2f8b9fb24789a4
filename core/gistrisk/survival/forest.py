"""scikit-survival's random survival forest, without scikit-learn's per-tree parameter bookkeeping.

``sksurv.ensemble.RandomSurvivalForest`` makes each tree by ``clone`` + ``set_params`` and draws its
``random_state`` through ``get_params``; each of these reads the tree class's signature with ``inspect``
(0.15-0.3 ms a tree: a fifth of a 100-tree forest at this project's cohort sizes, and the forest is
refitted for every cross-validation fold of every selection). Here a tree is constructed directly with the
same parameters and the same ``random_state`` draw, so the trees, and every prediction, are those of
scikit-survival's forest (tests/survival/test_selection.py compares them bit for bit).

Each tree's seed then becomes a new ``RandomState(seed)`` two or three times (its bootstrap rows, its
splitter, its out-of-bag rows), 0.13-0.18 ms each (a quarter of a default fit): when the trees are grown one
after another, they get a :class:`_TreeSeed` instead, which gives the same numbers from a reseeded shared
generator.
"""

from __future__ import annotations

import functools

import numpy as np
from joblib import effective_n_jobs
from sksurv import ensemble
from sksurv.tree import SurvivalTree

_MAX_INT = np.iinfo(np.int32).max  # the bound scikit-learn's _set_random_states draws below


class _SurvivalTree(SurvivalTree):
    """``SurvivalTree`` whose parameter names (its ``__init__`` signature) are read once, not per call."""

    @classmethod
    @functools.cache
    def _get_param_names(cls) -> list[str]:
        return super()._get_param_names()


class _TreeSeed(np.random.RandomState):
    """A tree's ``random_state`` while its forest grows: every ``randint`` comes from the start of
    ``RandomState(seed)``'s stream, as scikit-learn's ``check_random_state(seed).randint(...)`` does each time
    (the only draws it takes from a tree's seed), on a bit generator the forest's trees share."""

    def __init__(self, bit_generator: np.random.MT19937, seed: int):
        super().__init__(bit_generator)
        self.tree_seed = seed

    def randint(self, *args, **kwargs):
        self.seed(self.tree_seed)
        return super().randint(*args, **kwargs)


class RandomSurvivalForest(ensemble.RandomSurvivalForest):
    """``sksurv.ensemble.RandomSurvivalForest`` (same parameters, same trees) built faster; see the module."""

    _shared_bits: np.random.MT19937 | None = None

    def fit(self, X, y, sample_weight=None):
        # trees grown in threads would reseed the shared generator under each other: plain seeds then
        self._shared_bits = np.random.MT19937(0) if effective_n_jobs(self.n_jobs) == 1 else None
        try:
            return super().fit(X, y, sample_weight)
        finally:
            self._shared_bits = None
            for tree in getattr(self, "estimators_", []):  # the seeds scikit-survival's trees keep
                if isinstance(tree.random_state, _TreeSeed):
                    tree.random_state = tree.random_state.tree_seed

    def _make_estimator(self, append: bool = True, random_state: np.random.RandomState | None = None):
        # as BaseEnsemble._make_estimator: the forest's tree parameters on a default tree, then one draw
        # for the tree's only random_state parameter (sklearn.ensemble._base._set_random_states)
        tree = _SurvivalTree(**{p: getattr(self, p) for p in self.estimator_params})
        if random_state is not None:
            seed = random_state.randint(_MAX_INT)
            tree.random_state = seed if self._shared_bits is None else _TreeSeed(self._shared_bits, seed)
        if append:
            self.estimators_.append(tree)
        return tree
