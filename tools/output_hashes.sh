#!/usr/bin/env bash
# Render a fixed set of outputs with the shipped weights and print one md5 per file, so a
# refactor can show that it changes no pixel and no byte:
#
#   tools/output_hashes.sh /tmp/before > before.md5     # on the old commit
#   tools/output_hashes.sh /tmp/after > after.md5       # on the new one
#   diff before.md5 after.md5 && echo identical
#
# Covers the demo GIF and MP4, PNG frames of real studio portraits (surprise, sad, neutral
# from strong starting expressions), the small weights, the AU grid, a video with audio
# and the AU estimate. fp32, so the figures do not depend on the CPU's bf16 support.
# Needs ../shared/data (or $GAN_ANIM_SHARED/data). About a minute on 2 cores.
set -euo pipefail
OUT=${1:?usage: tools/output_hashes.sh OUTPUT_FOLDER}
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${GAN_ANIM_SHARED:-../shared}/data
GA="$PY -m gan_anim"
export GAN_ANIM_PRECISION=fp32
rm -rf "$OUT" && mkdir -p "$OUT"
$GA animate examples/astronaut.jpg --from neutral --to happy --frames 24 --loop --ease smooth -o "$OUT/astronaut-happy.gif" -q
$GA animate examples/astronaut.jpg --from neutral --to surprise --frames 24 --loop --ease smooth -o "$OUT/astronaut-surprise.mp4" -q
for p in 0001 0150 0900; do
  for t in surprise sad neutral; do
    $GA animate "$DATA/cfee/images/$p.jpg" --to $t --frames 4 -o "$OUT/cfee-$p-$t" -q
  done
done
$GA animate "$DATA/cfee/images/0150.jpg" --to happy --frames 4 --weights weights/gan-anim-small.pt -o "$OUT/small-0150" -q
$GA grid examples/astronaut.jpg -o "$OUT/grid.png" 2> /dev/null
$GA video "$DATA/mead_clips/M030_front_neutral_level1_001.mp4" --aus happy -o "$OUT/video.mp4" -q
$GA aus examples/astronaut.jpg > "$OUT/aus.txt"
(cd "$OUT" && find . -type f | sort | xargs md5sum)
