#!/usr/bin/env bash
# The GPU kit (docs/gpu-kit.md): one command on the GPU machine, from the checkout root.
#
#   bash tools/gpu_run.sh OUT_DIR [MINUTES]        # MINUTES of training (default 6)
#
# Stages (each one's failure is recorded; none stops the others):
#   env    torch, CUDA device, bf16, and that gan_anim trains without dlib (dlib blocked)
#   tests  pytest -m cuda tests/test_gpu_kit.py            -> its tail in OUT/run.log
#   arm B  (GPU_KIT_ARM_B="--lambda-au 40 ...") a second medium run with other loss weights,
#          trained beside the main one on the same GPU      -> OUT/weights-medium-b-fp16.pt
#   train  medium preset on gpu-pack/faces128.pack (make gpu-pack: shared photos + cfee's
#          training people) with the pair loss: a short calibration measures images/s,
#          then a resumed run whose LR decay ends at the budget (--max-minutes is the net);
#          resumes from a checkpoint (or its parts) in gpu-pack/resume/ if there is one
#   export fp16 generator weights                          -> OUT/weights-medium-fp16.pt
#   compare  today's training step against the fast one (tools/train_compare.py): GPU_KIT_COMPARE_STEPS
#          (300) steps each way, loss windows + images/s     -> figures.json "compare"
#   bench  benchmarks/bench_gpu.py (<= 60 s), then its end-to-end rows
#          (benchmarks/bench_gpu_pipeline.py, <= GPU_KIT_PIPELINE_S) -> figures.json "bench"
#   collect                                                -> OUT/samples.png, log.jsonl, run.log,
#          figures.json, checkpoint.pt (compact; .part0/.part1 if over 15 MiB)
# At most 8 files of at most 16 MiB each in OUT_DIR; the whole run stays under
# GPU_KIT_TOTAL_S (530 s) by shortening training and the benchmark.
# Exit status: 0 all stages passed; 3 weights exported but a stage failed; 1 no weights.
#
# Environment (defaults):
#   GPU_KIT_DEVICE=cuda   GPU_KIT_PACK=gpu-pack/faces128.pack   GPU_KIT_RESUME=<pack dir>/resume
#   GPU_KIT_PRESET=medium GPU_KIT_BATCH=128  GPU_KIT_LR=2e-4  GPU_KIT_GP_EVERY=4
#   GPU_KIT_STEPS=        fixed steps (skips the calibration)   GPU_KIT_EXPECTED_IPS=1500
#   GPU_KIT_CALIB_S=45    GPU_KIT_TOTAL_S=530   GPU_KIT_PYTEST=1   GPU_KIT_BENCH_S=60
#   GPU_KIT_PIPELINE_S=60 the end-to-end rows (0 skips them)
#   GPU_KIT_COMPARE_STEPS=300 (0 skips)  GPU_KIT_COMPARE_S=120  GPU_KIT_COMPARE_ARGS= (e.g. --compile graphs)
#   GPU_KIT_TRAIN_ARGS="--lambda-au 40 --lambda-attention 0.2 --lambda-pair 5 --paired-share 0.25"
#                         `gan-anim train` options of the main run (set it empty for none)
#   GPU_KIT_BENCH_ARGS=   extra bench_gpu.py options   GPU_KIT_WORK=runs/gpu-kit
#   (a second call on the same still-warm machine finds WORK/run and resumes from it)
#   GPU_KIT_PYTHON=python3
set -u

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
mkdir -p "$1" || exit 1
OUT=$(cd "$1" && pwd)
MINUTES=${2:-6}
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/.." || exit 1
ROOT=$(pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ -z "${GPU_KIT_PYTHON:-}" ]; then   # the first python that has torch
    for c in python3 python; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c "import torch" >/dev/null 2>&1; then
            GPU_KIT_PYTHON=$(command -v "$c"); break
        fi
    done
fi
export GPU_KIT_PYTHON=${GPU_KIT_PYTHON:-python3}
PY=$GPU_KIT_PYTHON

if [ -z "${GPU_KIT_INNER:-}" ]; then   # run ourselves with all output also in WORK/run.log
    export GPU_KIT_WORK=${GPU_KIT_WORK:-runs/gpu-kit}
    export GPU_KIT_START=$(date +%s)
    mkdir -p "$GPU_KIT_WORK" || exit 1
    rm -f "$GPU_KIT_WORK"/env.json "$GPU_KIT_WORK"/train.json "$GPU_KIT_WORK"/bench.json "$GPU_KIT_WORK"/compare.json
    GPU_KIT_INNER=1 bash "$SELF" "$OUT" "$MINUTES" 2>&1 | tee "$GPU_KIT_WORK/run.log"
    exit "${PIPESTATUS[0]}"
fi

WORK=$GPU_KIT_WORK
RUN=$WORK/run
START=${GPU_KIT_START:-$(date +%s)}
TOTAL=${GPU_KIT_TOTAL_S:-530}
DEV=${GPU_KIT_DEVICE:-cuda}
PACK=${GPU_KIT_PACK:-gpu-pack/faces128.pack}
RESUME=${GPU_KIT_RESUME:-$(dirname "$PACK")/resume}
PRESET=${GPU_KIT_PRESET:-medium}
# the shipped model's loss weights, plus the pair loss on cfee's same-person photos
TRAIN_ARGS=${GPU_KIT_TRAIN_ARGS-"--lambda-au 40 --lambda-attention 0.2 --lambda-pair 5 --paired-share 0.25"}
WEIGHTS=$OUT/weights-$PRESET-fp16.pt
: > "$WORK/stages.tsv"

if command -v timeout >/dev/null 2>&1; then TO="timeout -k 20"; else TO=""; fi
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
# stage NAME LIMIT_S CMD...   (STAGE_LOG=file sends the command's output there)
stage() {
    local name=$1 limit=$2 rc t0 t1
    shift 2
    [ "$limit" -lt 5 ] && limit=5
    t0=$(date +%s.%N)
    echo "=== [$name] $(date -u +%H:%M:%S) limit ${limit}s: $*"
    if [ -n "${STAGE_LOG:-}" ]; then
        if [ -n "$TO" ]; then $TO "$limit" "$@" > "$STAGE_LOG" 2>&1; else "$@" > "$STAGE_LOG" 2>&1; fi
        rc=$?
        tail -n 30 "$STAGE_LOG"
    else
        if [ -n "$TO" ]; then $TO "$limit" "$@"; else "$@"; fi
        rc=$?
    fi
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")" >> "$WORK/stages.tsv"
    echo "=== [$name] rc=$rc after $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s ($(left) s of $TOTAL left)"
    return $rc
}
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

echo "GPU kit: out $OUT, work $WORK, device $DEV, pack $PACK, $MINUTES min of training, python $PY"

# 1. environment
stage env 90 "$PY" tools/gpu_kit.py env --device "$DEV" --pack "$PACK" --json "$WORK/env.json"

# 2. CUDA tests (a failure is recorded, training goes on)
if [ "${GPU_KIT_PYTEST:-1}" != "0" ]; then
    STAGE_LOG=$WORK/pytest-cuda.log stage tests "$(min 150 $(( $(left) - 200 )))" \
        "$PY" -m pytest -m cuda -q -p no:cacheprovider tests/test_gpu_kit.py
fi

# 3. training: MINUTES, or less if the whole run would pass TOTAL (export+bench+collect ~100 s)
BENCH_S=${GPU_KIT_BENCH_S:-60}
PIPE_S=${GPU_KIT_PIPELINE_S:-60}
COMPARE_STEPS=${GPU_KIT_COMPARE_STEPS:-300}
COMPARE_S=0
[ "$COMPARE_STEPS" -gt 0 ] && COMPARE_S=${GPU_KIT_COMPARE_S:-120}
TRAIN_S=$(awk "BEGIN{printf \"%d\", $MINUTES * 60}")
TRAIN_S=$(min "$TRAIN_S" $(( $(left) - BENCH_S - PIPE_S - COMPARE_S - 45 )))
[ "$TRAIN_S" -lt 10 ] && TRAIN_S=10
STEPS_ARGS=()
[ -n "${GPU_KIT_STEPS:-}" ] && STEPS_ARGS=(--steps "$GPU_KIT_STEPS")
# 3b. arm B: the same plan with other loss weights, in the background on the same GPU
ARM_B_PID=""
if [ -n "${GPU_KIT_ARM_B:-}" ]; then
    B_STEPS=$(awk "BEGIN{printf \"%d\", $TRAIN_S * ${GPU_KIT_EXPECTED_IPS:-1500} / ${GPU_KIT_BATCH:-128}}")
    [ -n "${GPU_KIT_STEPS:-}" ] && B_STEPS=$GPU_KIT_STEPS
    [ "$B_STEPS" -lt 3 ] && B_STEPS=3
    echo "=== [arm B] $B_STEPS steps, budget ${TRAIN_S}s: $GPU_KIT_ARM_B"
    # shellcheck disable=SC2086
    $TO $(( TRAIN_S + 60 )) "$PY" -m gan_anim train --data "$PACK" --out "$WORK/run-b" --preset "$PRESET" \
        --device "$DEV" --batch-size "${GPU_KIT_BATCH:-128}" --lr "${GPU_KIT_LR:-2e-4}" \
        --gp-every "${GPU_KIT_GP_EVERY:-4}" --steps "$B_STEPS" --decay-start $(( B_STEPS * 2 / 3 )) \
        --checkpoint-every $(( B_STEPS / 4 + 1 )) --keep 1 --max-minutes "$(awk "BEGIN{print ($TRAIN_S - 15) / 60}")" \
        --quiet $GPU_KIT_ARM_B > "$WORK/arm-b.log" 2>&1 &
    ARM_B_PID=$!
fi

stage train $(( TRAIN_S + 120 )) "$PY" tools/gpu_kit.py train --pack "$PACK" --run "$RUN" \
    --seconds "$TRAIN_S" --preset "$PRESET" --device "$DEV" --batch "${GPU_KIT_BATCH:-128}" \
    --lr "${GPU_KIT_LR:-2e-4}" --gp-every "${GPU_KIT_GP_EVERY:-4}" \
    --expected-ips "${GPU_KIT_EXPECTED_IPS:-1500}" --calib-s "${GPU_KIT_CALIB_S:-45}" \
    --resume-dir "$RESUME" --report "$WORK/train.json" --train-args "$TRAIN_ARGS" \
    ${STEPS_ARGS[@]+"${STEPS_ARGS[@]}"}

# 4. fp16 weights of the newest checkpoint (even after a failed training stage)
if ls "$RUN"/checkpoint-*.pt >/dev/null 2>&1; then
    stage export 90 "$PY" tools/gpu_kit.py gan-anim export "$RUN" -o "$WEIGHTS" --half
else
    echo "=== [export] no checkpoint in $RUN"
    printf 'export\t1\t0\n' >> "$WORK/stages.tsv"
fi

if [ -n "$ARM_B_PID" ]; then
    wait "$ARM_B_PID"; echo "=== [arm B] rc=$?"; tail -n 5 "$WORK/arm-b.log"
    if ls "$WORK/run-b"/checkpoint-*.pt >/dev/null 2>&1; then
        stage export-b 90 "$PY" tools/gpu_kit.py gan-anim export "$WORK/run-b" -o "$OUT/weights-$PRESET-b-fp16.pt" --half
    else
        printf 'export-b\t1\t0\n' >> "$WORK/stages.tsv"
    fi
fi

# 4b. today's training step against the fast one: speed and both loss curves
[ "$COMPARE_STEPS" -gt 0 ] && COMPARE_S=$(min "$COMPARE_S" $(( $(left) - BENCH_S - PIPE_S - 30 )))
if [ "$COMPARE_STEPS" -gt 0 ] && [ "$COMPARE_S" -lt 10 ]; then
    echo "=== [compare] skipped: $(left) s left"
    printf 'compare\t1\t0\n' >> "$WORK/stages.tsv"
elif [ "$COMPARE_STEPS" -gt 0 ]; then
    # shellcheck disable=SC2086
    stage compare $(( COMPARE_S + 30 )) "$PY" tools/train_compare.py run --pack "$PACK" --preset "$PRESET" \
        --device "$DEV" --batch "${GPU_KIT_BATCH:-128}" --lr "${GPU_KIT_LR:-2e-4}" \
        --gp-every "${GPU_KIT_GP_EVERY:-4}" --steps "$COMPARE_STEPS" --seconds "$COMPARE_S" \
        --json "$WORK/compare.json" ${GPU_KIT_COMPARE_ARGS:-}
fi

# 5. benchmark, in what time is left
BENCH_S=$(min "$BENCH_S" $(( $(left) - 25 )))
if [ "$BENCH_S" -ge 5 ]; then
    # shellcheck disable=SC2086
    PIPE_S=$(min "$PIPE_S" $(( $(left) - BENCH_S - 25 )))
    [ "$PIPE_S" -lt 0 ] && PIPE_S=0
    stage bench $(( BENCH_S + PIPE_S + 40 )) "$PY" benchmarks/bench_gpu.py --device "$DEV" --json "$WORK/bench.json" \
        --max-seconds "$BENCH_S" --pipeline-seconds "$PIPE_S" ${GPU_KIT_BENCH_ARGS:-}
else
    echo "=== [bench] skipped: $(left) s left"
    printf 'bench\t1\t0\n' >> "$WORK/stages.tsv"
fi

# 6. OUT: at most 8 files of at most 16 MiB, figures.json always
stage collect 120 "$PY" tools/gpu_kit.py collect --work "$WORK" --run "$RUN" --out "$OUT"
if [ ! -s "$OUT/figures.json" ]; then   # python could not write it: the stage table at least
    {
        printf '{"kit": "gan-anim gpu kit", "collect_failed": true, "stages": {'
        awk -F'\t' 'BEGIN{s=""} {printf "%s\"%s\": {\"rc\": %s, \"seconds\": %s}", s, $1, $2, $3; s=", "}' "$WORK/stages.tsv"
        printf '}}\n'
    } > "$OUT/figures.json"
    [ -f "$WORK/run.log" ] && tail -c 15000000 "$WORK/run.log" > "$OUT/run.log"
fi

echo "=== OUT_DIR $OUT after $(( $(date +%s) - START )) s:"
ls -l "$OUT"
NFILES=$(find "$OUT" -maxdepth 1 -type f | wc -l)
BIG=$(find "$OUT" -maxdepth 1 -type f -size +16777216c | wc -l)
if [ "$NFILES" -le 8 ] && [ "$BIG" -eq 0 ]; then
    echo "OK: $NFILES files, none over 16 MiB"
else
    echo "LIMIT EXCEEDED: $NFILES files (max 8), $BIG over 16 MiB"
fi
FAILED=$(awk -F'\t' '$2 != 0 {printf "%s ", $1}' "$WORK/stages.tsv")
if [ ! -s "$WEIGHTS" ]; then
    echo "GPU kit: no weights (failed stages: ${FAILED:-none})"
    exit 1
fi
if [ -n "$FAILED" ] || [ "$NFILES" -gt 8 ] || [ "$BIG" -ne 0 ]; then
    echo "GPU kit: weights written; failed stages: ${FAILED:-none}"
    exit 3
fi
echo "GPU kit: all stages passed"
exit 0
