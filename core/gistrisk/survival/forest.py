"""scikit-survival's random survival forest, without scikit-learn's per-tree parameter bookkeeping.

``sksurv.ensemble.RandomSurvivalForest`` makes each tree by ``clone`` + ``set_params`` and draws its
``random_state`` through ``get_params``; each of these reads the tree class's signature with ``inspect``
(0.15-0.3 ms a tree: a fifth of a 100-tree forest at this project's cohort sizes, and the forest is
refitted for every cross-validation fold of every selection). Here a tree is constructed directly with the
same parameters and the same ``random_state`` draw, so the trees, and every prediction, are those of
scikit-survival's forest (tests/survival/test_selection.py compares them bit for bit).
"""

from __future__ import annotations

import functools

import numpy as np
from sksurv import ensemble
from sksurv.tree import SurvivalTree

_MAX_INT = np.iinfo(np.int32).max  # the bound scikit-learn's _set_random_states draws below


class _SurvivalTree(SurvivalTree):
    """``SurvivalTree`` whose parameter names (its ``__init__`` signature) are read once, not per call."""

    @classmethod
    @functools.cache
    def _get_param_names(cls) -> list[str]:
        return super()._get_param_names()


class RandomSurvivalForest(ensemble.RandomSurvivalForest):
    """``sksurv.ensemble.RandomSurvivalForest`` (same parameters, same trees) built faster; see the module."""

    def _make_estimator(self, append: bool = True, random_state: np.random.RandomState | None = None):
        # as BaseEnsemble._make_estimator: the forest's tree parameters on a default tree, then one draw
        # for the tree's only random_state parameter (sklearn.ensemble._base._set_random_states)
        tree = _SurvivalTree(**{p: getattr(self, p) for p in self.estimator_params})
        if random_state is not None:
            tree.random_state = random_state.randint(_MAX_INT)
        if append:
            self.estimators_.append(tree)
        return tree
