"""The six tissue classes of the paper (their QuPath aliases live in qupath_bridge.classes)."""

from __future__ import annotations

#: Order = the classifier's output columns. "tumour" must stay first-class: features use it.
CLASSES: tuple[str, ...] = ("tumour", "stroma", "mucosa", "smooth muscle", "necrosis", "background")
TUMOUR = "tumour"

#: Other names pathologists give these classes in QuPath: the one table is
#: ``qupath_bridge.classes.DEFAULT_ALIASES`` (the bridge applies it when mapping classes).

#: ImageNet normalisation, used by the ImageNet-initialised ResNet50 and stored in every classifier.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
