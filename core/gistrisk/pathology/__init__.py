"""Pathology arm: H&E whole-slide images -> tiles -> ResNet50 tissue classifier -> slide features.

Modules (one job each): ``slides`` (OpenSlide/tiffslide/PIL reader, mpp, levels), ``tissue``
(thumbnail tissue mask), ``tiling`` (grid, tissue filter, annotation labels), ``annotations``
(QuPath GeoJSON via qupath_bridge), ``model`` (ResNet50 architecture and weight files), ``data``
(tile Dataset), ``train`` (training recipe), ``engine`` (batched inference), ``features``
(tumour-tile pooling, output table), ``pipeline`` (one slide end to end, batch workers),
``manifest`` (which slides: manifest CSV, folder, entries), ``runs`` (the Python API of a run: one
slide's tiles, a tiles or features cohort on the batch engine), ``checks`` (numeric settings),
``cli`` (``gistrisk pathology tiles|train|features``, options -> ``runs`` -> console).

Torch is imported only by the modules that need it; importing this package is cheap.
"""
