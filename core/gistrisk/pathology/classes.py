"""The six tissue classes of the paper and the QuPath class names that map onto them."""

from __future__ import annotations

#: Order = the classifier's output columns. "tumour" must stay first-class: features use it.
CLASSES: tuple[str, ...] = ("tumour", "stroma", "mucosa", "smooth muscle", "necrosis", "background")
TUMOUR = "tumour"

#: Common spellings in QuPath projects (compared case-insensitively by the bridge).
ALIASES: dict[str, str] = {
    "tumor": "tumour",
    "tumour tissue": "tumour",
    "tumor tissue": "tumour",
    "smooth_muscle": "smooth muscle",
    "smoothmuscle": "smooth muscle",
    "muscle": "smooth muscle",
    "muscularis": "smooth muscle",
    "necrotic": "necrosis",
    "bg": "background",
}

#: ImageNet normalisation, used by the ImageNet-initialised ResNet50 and stored in every classifier.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
