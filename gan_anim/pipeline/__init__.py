"""The user-facing jobs, each built from the faces, render and media stages: a photo
animation (``photo``), many photos (``batch``), the AU grid (``grid``) and a video
(``video``, with its AU timelines in ``au_timeline``)."""
