"""AU estimation: 17 AU intensities (0..5) of a face, from its landmark geometry
(``geometry``) and from appearance features (``features``) through a regressor trained on
human FACS codes (``appearance``); ``photo`` runs detection and both on a photo."""
