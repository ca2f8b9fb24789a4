"""Pathology arm: H&E whole-slide images -> tiles -> tissue classifier (ResNet50 by default, or a timm
encoder) -> slide features.

Modules (one job each): ``slides`` (OpenSlide/tiffslide/PIL reader, mpp, levels), ``tissue``
(thumbnail tissue mask), ``tiling`` (grid, tissue filter, annotation labels), ``annotations``
(QuPath GeoJSON via qupath_bridge), ``encoders`` (which tile encoder: ResNet50 or a timm model from
local weights), ``model`` (classifier architecture and weight files), ``stain`` (Reinhard and
Macenko normalisation), ``data`` (tile Dataset), ``train`` (training recipe), ``engine`` (batched
inference), ``features`` (tumour-tile pooling, output table), ``tumour`` (the tumour-tile rule, torch-free), ``columns`` (the ``path_0000``
column rule, torch-free), ``embeddings`` (per-tile embeddings kept per slide, HDF5), ``abmil`` (attention pooling of a
patient's tumour-tile embeddings with a Cox loss: the fit setting ``aggregation: abmil``), ``pipeline`` (one slide end to end, batch workers), ``manifest`` (which
slides: manifest CSV, folder, entries), ``runs`` (the Python API of a run: one slide's tiles, a tiles
or features cohort on the batch engine, re-aggregation from stored embeddings), ``checks`` (numeric
settings), ``cli`` (``gistrisk pathology tiles|train|features|aggregate``, options -> ``runs`` -> console).

Torch is imported only by the modules that need it; importing this package is cheap.
"""
