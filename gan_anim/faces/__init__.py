"""Faces: find them (``detect``, on dlib's models from ``dlib_models``), frame them for
the model (``align``), follow them through a video (``tracking``, with ``smoothing``),
and tell who they are (``identity``)."""
