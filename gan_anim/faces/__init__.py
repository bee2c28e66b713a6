"""Faces: find them (``detect``), frame them for the model (``align``), follow them
through a video (``tracking``, ``smoothing``)."""
