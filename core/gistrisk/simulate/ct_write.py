"""Write a simulated CT as Slicer writes it: the volume as NRRD and the tumour as a `.seg.nrrd`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicerio

from gistrisk.atomic import atomic_path
from gistrisk.simulate.ct import CTCase

SEGMENT_NAME = "GIST tumour"
SEGMENT_COLOR = (0.85, 0.33, 0.1)

#: DICOM anatomic region (SNOMED CT) of each site, for the segment's terminology tag.
_ANATOMY = {
    "stomach": ["SCT", "69695003", "Stomach"],
    "small intestine": ["SCT", "30315005", "Small intestine"],
    "colorectum": ["SCT", "71854001", "Colon"],
}


def terminology(site: str) -> dict:
    """Slicer terminology entry: a mass (morphologically altered structure) at the tumour's site."""
    term = {
        "contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
        "category": ["SCT", "49755003", "Morphologically Altered Structure"],
        "type": ["SCT", "4147007", "Mass"],
        "anatomicContextName": "Anatomic codes - DICOM master list",
    }
    if site in _ANATOMY:
        term["anatomicRegion"] = _ANATOMY[site]
    return term


def write_ct(case: CTCase, image_path: Path, seg_path: Path, site: str) -> None:
    """Write ``case.hu`` as a gzip NRRD (SimpleITK) and ``case.mask`` as a Slicer segmentation."""
    img = sitk.GetImageFromArray(case.hu)
    img.SetSpacing(case.spacing)
    img.SetOrigin(case.origin)
    with atomic_path(image_path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)

    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.diag(case.spacing)
    ijk_to_lps[:3, 3] = case.origin
    seg = slicerio.create_segmentation(case.mask.shape[::-1], ijk_to_lps)
    slicerio.add_segment(seg, case.mask.transpose(2, 1, 0), {
        "id": "Segment_1", "name": SEGMENT_NAME, "color": list(SEGMENT_COLOR),
        "terminology": terminology(site), "status": "completed"})
    with atomic_path(seg_path) as tmp:
        slicerio.write_segmentation(str(tmp), seg)
        tmp.write_bytes(_drop_timestamp(tmp.read_bytes()))


def _drop_timestamp(data: bytes) -> bytes:
    """Remove pynrrd's "# on <date>(GMT)." header comment so the same seed gives the same bytes."""
    end = data.find(b"\n\n")
    header = re.sub(rb"# on [0-9: -]+\(GMT\)\.\n", b"", data[:end], count=1)
    return header + data[end:]
