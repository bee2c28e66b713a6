"""dlib's models (face_recognition_models): loaded once, shared or lent per thread.

The landmark and descriptor models are one shared instance each (``shared_model``). A
face detector releases the GIL and is not thread-safe, so each concurrent user borrows an
instance of its own (``borrow_detector``): the first is built by dlib, the others are
unpickled from it.
"""
from __future__ import annotations

import contextlib
import pickle
import queue
import threading
from functools import lru_cache

# dlib's face detectors, by their ``--detector`` name.
DETECTORS = ("hog", "cnn")

_loading_lock = threading.Lock()
_spare: dict[str, queue.SimpleQueue] = {}
_pickled: dict[str, bytes] = {}


def _load(kind: str):
    import dlib
    import face_recognition_models as frm

    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "cnn":
        return dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    if kind == "landmarks":
        return dlib.shape_predictor(frm.pose_predictor_model_location())
    if kind == "descriptor":
        return dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    raise ValueError(kind)


@lru_cache(maxsize=None)
def _cached(kind: str):
    return _load(kind)


def shared_model(kind: str):
    """dlib's model ``kind`` ("landmarks", "descriptor"), loaded once even when threads ask
    for it together (the landmark model takes 0.65 s; ``render.edit_model.EditModel`` loads it in
    the background)."""
    with _loading_lock:
        return _cached(kind)


def load_models(*kinds: str) -> None:
    """Load dlib's models now (worker start-up), not on first use. A detector goes into
    the pool that ``borrow_detector`` lends from."""
    for kind in kinds:
        if kind in DETECTORS:
            with borrow_detector(kind):
                pass
        else:
            shared_model(kind)


def _new_detector(detector: str):
    """A fresh detector instance: the first one built by dlib (HOG: 0.24 s, it parses its
    model from text), the others unpickled from it (HOG: 2 ms)."""
    data = _pickled.get(detector)
    if data is not None:
        return pickle.loads(data)
    model = _load(detector)
    with contextlib.suppress(Exception):  # not every dlib build pickles every model
        _pickled[detector] = pickle.dumps(model)
    return model


@contextlib.contextmanager
def borrow_detector(detector: str):
    """A detector instance of one's own while in use: dlib's detectors release the GIL
    and are not thread-safe, so each concurrent tile gets its own (created once, reused)."""
    spare = _spare.setdefault(detector, queue.SimpleQueue())
    try:
        model = spare.get_nowait()
    except queue.Empty:
        model = _new_detector(detector)
    try:
        yield model
    finally:
        spare.put(model)
