"""Who a face is: dlib's 128-d face descriptor, to check that an edit keeps the identity
(the quality benchmark, the weights test)."""
from __future__ import annotations

import numpy as np

from .detect import Face
from .dlib_models import shared_model


def face_descriptor(image: np.ndarray, face: Face) -> np.ndarray:
    """dlib's (128,) face descriptor of ``face`` in ``image`` (H,W,3 uint8 RGB); faces of
    one person lie within about 0.6 of each other."""
    import dlib

    rect = dlib.rectangle(*[int(v) for v in face.box])
    shape = shared_model("landmarks")(np.ascontiguousarray(image), rect)
    return np.array(shared_model("descriptor").compute_face_descriptor(np.ascontiguousarray(image), shape))
