"""Cheeks that drop (``gan_anim.cheeks``): a smile taken away lowers the lower lids and the
cheeks under them, and nothing else moves."""
from __future__ import annotations

import numpy as np

from gan_anim.aus import AU_INDEX, AU_SCALE, PRESETS, au_dict_to_vector
from gan_anim.cheeks import CHEEK_DROP, cheek_drop, cheek_flow, cheek_motion


def _grin() -> np.ndarray:
    v = np.zeros((1, 17), np.float32)
    v[0, AU_INDEX["AU06"]], v[0, AU_INDEX["AU12"]] = 2 / AU_SCALE, 5 / AU_SCALE
    return v


def _eyes() -> np.ndarray:
    """Synthetic landmarks (crop units): two eyes 0.3 apart, each 0.1 wide and 0.04 open."""
    lm = np.zeros((1, 68, 2), np.float32)
    for first, cx in ((36, 0.35), (42, 0.65)):
        lm[0, first:first + 6] = [(cx - 0.05, 0.4), (cx - 0.02, 0.38), (cx + 0.02, 0.38),
                                  (cx + 0.05, 0.4), (cx + 0.02, 0.42), (cx - 0.02, 0.42)]
    return lm


def test_cheeks_drop_only_when_a_smile_falls():
    neutral = (au_dict_to_vector(PRESETS["neutral"]) / AU_SCALE)[None]
    assert cheek_drop(_grin(), neutral)[0] == np.float32(CHEEK_DROP)
    assert cheek_drop(_grin(), _grin())[0] == 0.0                   # the face's own AUs
    happy = (au_dict_to_vector(PRESETS["happy"]) / AU_SCALE)[None]
    assert cheek_drop(neutral, happy)[0] == 0.0                      # a smile rising


def test_cheek_flow_moves_the_lower_lid_and_cheek_down_and_the_upper_lid_not():
    lm, size = _eyes(), 200
    drop = np.array([0.03], np.float32)
    flow = cheek_flow(lm, drop, size)
    c = (np.arange(size) + 0.5) / size
    col = int(0.35 * size)                                           # the left eye's centre
    shift = -flow[0, 1, :, col] / 2 / 0.3                            # eye distances, down
    row = lambda y: int(np.argmin(np.abs(c - y)))                    # noqa: E731
    assert abs(shift[row(0.42)] - 0.03) < 1e-3                       # the lower lid
    assert abs(shift[row(0.42 + 0.3 * 0.3)] - 0.03) < 1e-3           # the cheek under it
    assert shift[row(0.38)] == 0 and shift[row(0.42 + 0.3 * 0.9)] == 0   # upper lid, below the band
    assert not flow[0, 0].any() and not flow[0, 1, :, int(0.5 * size)].any()  # the nose's column
    assert np.allclose(cheek_motion(lm, drop)[0, [40, 41, 46, 47], 1], 0.03 * 0.3)
    assert not cheek_flow(lm, np.zeros(1, np.float32), size).any()
