"""Files in and out: photo decoding (``images``), video decoding (``video_reader``),
GIF/MP4/PNG writing (``writer``), and the standard-library checks and names of inputs
and outputs (``paths``)."""
