"""Write a slide as a pyramidal, tiled, JPEG-compressed TIFF that OpenSlide and tiffslide both open.

A generic tiled TIFF: one full-resolution page plus reduced-resolution pages (NewSubfileType 1),
downsample 4 between levels, microns per pixel in XResolution/YResolution with centimetre units
(how both readers find ``mpp``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gistrisk.atomic import atomic_path

# tifffile is imported inside write_slide: it comes with the pathology extra, and without it only the
# slides fail (each recorded as a failure by the image job) while the CTs and tables are still written.


def pyramid(rgb: np.ndarray, levels: int, factor: int = 4) -> list[np.ndarray]:
    """``levels`` images, each ``factor`` times smaller than the last (mean of factor x factor blocks)."""
    out = [rgb]
    for _ in range(levels - 1):
        a = out[-1]
        h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
        x = a[:h, :w].astype(np.uint16)
        cols = sum(x[:, k::factor] for k in range(factor))  # strided sums: much faster than reshape-sum
        assert isinstance(cols, np.ndarray)  # factor >= 1 terms: never sum()'s start value 0
        blocks = sum(cols[k::factor] for k in range(factor))
        assert isinstance(blocks, np.ndarray)
        out.append(((blocks + factor * factor // 2) // (factor * factor)).astype(np.uint8))
    return out


def write_slide(path: Path, rgb: np.ndarray, mpp: float, levels: int = 3, tile: int = 256,
                quality: int = 90) -> None:
    """Write ``rgb`` (h, w, 3) uint8 as a tiled pyramidal TIFF with ``mpp`` microns per pixel."""
    import tifffile  # noqa: PLC0415 - the pathology extra: only the image-level simulation writes slides

    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp) as tw:
            for i, img in enumerate(pyramid(rgb, levels)):
                px_per_cm = 1e4 / (mpp * 4**i)
                tw.write(img, photometric="rgb", tile=(tile, tile), compression="jpeg",
                         compressionargs={"level": quality}, resolution=(px_per_cm, px_per_cm),
                         resolutionunit="CENTIMETER", subfiletype=0 if i == 0 else 1, metadata=None,
                         software="gistrisk simulate")
