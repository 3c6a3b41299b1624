#!/usr/bin/env bash
# adaptcli's GPU check in one run (docs/performance.md, "GPU check"). From the project root:
#
#   bash benchmarks/gpu_check.sh                    # on the GPU machine: about 8 minutes at most
#   bash benchmarks/gpu_check.sh --dry              # its CPU-possible parts on any machine, quickly
#   bash benchmarks/gpu_check.sh --download-wheels  # here, with network: fill benchmarks/wheels/
#
# Stages (each under a time limit, all under DEADLINE seconds): info (versions, device, bf16 matmul
# rate), cuda_tests (tests/cuda), suite (the whole suite with the GPU visible), train_step
# (benchmarks/train_step.py --device cuda, memory probes one at a time), pipeline (SSv2-like clips ->
# prepare -> finetune -> eval --views 2x3 -> export --merge, with the engine's samples/s and peak
# memory). The clips are encoded in the background while the GPU stages run. Logs and JSON go to
# $OUT (default /tmp/adaptcli-gpu-check), at most 8 files; a summary table is printed last and
# written to $OUT/summary.md.
#
# The GPU image has no network: av, webdataset, braceexpand, annotated-types and pydantic (with
# pydantic-core, typing-inspection and a typing-extensions it accepts) come from wheels in
# benchmarks/wheels/ (git-ignored), installed under /tmp/adaptcli-site when the image lacks them.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
PY=${PYTHON:-python3}
WHEELS=$ROOT/benchmarks/wheels
# Versions for the GPU image (Python 3.12, manylinux x86_64); the GPU image has everything else.
WHEEL_PINS="av==18.1.0 webdataset==1.0.2 braceexpand==0.1.7 annotated-types==0.8.0 pydantic==2.14.4
  pydantic-core==2.50.5 typing-inspection==0.4.5 typing-extensions==4.16.0"

if [ "${1:-}" = "--download-wheels" ]; then
  mkdir -p "$WHEELS"
  exec $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$WHEELS" $WHEEL_PINS
fi
DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/adaptcli-gpu-check}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/adaptcli-gpu-check-work.XXXXXX)
DEADLINE=${DEADLINE:-$(( DRY ? 300 : 470 ))}
T0=$(date +%s)
ROWS=()
NPROC=$(nproc)
W=$(( NPROC > 4 ? NPROC - 4 : 1 ))

left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }
# stage NAME SECONDS CMD...: run CMD with the smaller of SECONDS and what is left, output to $OUT/NAME.log.
stage() {
  local name=$1 limit=$2; shift 2
  local l; l=$(left); (( l < limit )) && limit=$l
  if (( limit < 5 )); then row "$name" skipped 0 "deadline reached"; return 99; fi
  echo "== [+$(( $(date +%s) - T0 ))s] $name (limit ${limit}s)"
  local start; start=$(date +%s)
  timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  STAGE_S=$(( $(date +%s) - start ))
  tail -n 4 "$OUT/$name.log"
  return $rc
}
status() { case $1 in 0) echo ok ;; 124|137) echo timeout ;; *) echo "FAIL ($1)" ;; esac; }
last_pytest_line() { grep -E '[0-9]+ (passed|failed|skipped|error)' "$1" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//'; }

# ----------------------------------------------------------------------------------------- setup
if (( ! DRY )); then
  missing=$($PY - <<'EOF'
import importlib.util
from importlib.metadata import version
missing = [m for m in ("av", "webdataset", "braceexpand", "annotated_types", "pydantic") if importlib.util.find_spec(m) is None]
if "pydantic" not in missing and tuple(int(part) for part in version("pydantic").split(".")[:2]) < (2, 11):
    missing.append("pydantic>=2.11")
print(" ".join(missing))
EOF
)
  if [ -n "$missing" ]; then
    ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "missing $missing and no wheels in $WHEELS: run --download-wheels first"; exit 2; }
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/adaptcli-site \
      "$WHEELS"/*.whl || exit 2
    export PYTHONPATH=/tmp/adaptcli-site${PYTHONPATH:+:$PYTHONPATH}
  fi
  $PY -c "import adaptcli" 2>/dev/null ||
    $PY -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$WORK/install.log" 2>&1 ||
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi

# Clips for the pipeline stage, encoded in the background on all cores but 4 (the GPU stages use them).
if (( DRY )); then CLIPS=(8 --height 48 --width 64 --workers 1); else CLIPS=(${CLIPS:-384} --workers "$W"); fi
( $PY benchmarks/ssv2_clips.py "$WORK/ssv2" "${CLIPS[@]}" >"$WORK/clips.log" 2>&1 ) &
CLIPS_PID=$!

# ------------------------------------------------------------------------------------------ info
stage info 60 $PY - "$DRY" <<'EOF'
import sys, time
import accelerate, peft, timm, torch, webdataset
import adaptcli
dry = sys.argv[1] == "1"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, timm {timm.__version__}, "
      f"accelerate {accelerate.__version__}, peft {peft.__version__}, webdataset {webdataset.__version__}, "
      f"adaptcli {adaptcli.__version__}")
if not torch.cuda.is_available():
    print(f"device: cpu (torch sees no CUDA device{'; dry run' if dry else ''})")
    sys.exit(0 if dry else 1)
print(f"device: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    a @ a
torch.cuda.synchronize()
start, n = time.perf_counter(), 20
for _ in range(n):
    a @ a
torch.cuda.synchronize()
print(f"bf16 matmul rate: {2 * 8192**3 * n / (time.perf_counter() - start) / 1e12:.0f} TFLOP/s (8192^3)")
EOF
rc=$?
row info "$(status $rc)" "$STAGE_S" "$(grep -h '^device' "$OUT/info.log" | head -1); $(grep -ho 'torch [^,]*' "$OUT/info.log" | head -1); $(grep -ho 'bf16 matmul rate: [0-9]* TFLOP/s' "$OUT/info.log")"

# ------------------------------------------------------------------------------------ cuda tests
stage cuda_tests 170 $PY -m pytest tests/cuda -q -p no:cacheprovider -rs -n "$(( DRY ? 1 : 4 ))" --dist loadfile
rc=$?
row cuda_tests "$(status $rc)" "$STAGE_S" "$(last_pytest_line "$OUT/cuda_tests.log")"

# --------------------------------------------------------------------------- suite, GPU visible
if (( DRY )); then SUITE=(tests/test_config.py -q); else SUITE=(-n "$(( NPROC > 14 ? 14 : NPROC ))" --dist loadfile -q -m "not cuda"); fi
stage suite 160 $PY -m pytest -p no:cacheprovider "${SUITE[@]}"
rc=$?
row suite "$(status $rc)" "$STAGE_S" "$(last_pytest_line "$OUT/suite.log")"

# ------------------------------------------------------------------------------------ train step
if (( DRY )); then STEP=(--device cpu --quick --skip probe,time --methods arc); else STEP=(--device cuda --skip probe --repeats 3); fi
stage train_step 120 $PY benchmarks/train_step.py "${STEP[@]}" --json "$OUT/train_step.json"
rc=$?
row train_step "$(status $rc)" "$STAGE_S" "$(grep -c '^  memory ' "$OUT/train_step.log") memory probes$( (( DRY )) || echo ', one at a time'); table in train_step.log"

# ------------------------------------------------------------------------------------ pipeline
pipeline() {
  local cli=($PY -m adaptcli) run=$WORK/run
  local model=(--model video_vit_base_patch16 --set model.num_frames=16 --set train.batch_size=32
               --set train.epochs=2 --set data.workers="$W")
  (( DRY )) && model=(--model video_vit_test --set model.num_frames=4 --set model.img_size=32
                      --set train.batch_size=4 --set train.epochs=1 --set data.workers=0)
  while kill -0 "$CLIPS_PID" 2>/dev/null; do sleep 1; done
  cat "$WORK/clips.log"; grep -q ' clips, ' "$WORK/clips.log" || return 1
  "${cli[@]}" prepare ssv2 "$WORK/ssv2" --shards "$WORK/shards" --workers "$W" || return 1
  "${cli[@]}" finetune --method adaptformer --recipe ssv2 --data "$WORK/shards" --out "$run" "${model[@]}" \
    --set train.warmup_epochs=0 --set train.save_every_steps=null || return 1
  cp "$run/summary.json" "$OUT/pipeline_summary.json"
  # the same training with the decode on the GPU (data.decode=cuda), one epoch: samples/s and data wait
  local decode=cuda
  (( DRY )) && decode=cpu
  "${cli[@]}" finetune --method adaptformer --recipe ssv2 --data "$WORK/shards" --out "$WORK/decode-run" \
    "${model[@]}" --set train.warmup_epochs=0 --set train.save_every_steps=null --set train.epochs=1 \
    --set data.decode=$decode && cp "$WORK/decode-run/summary.json" "$WORK/decode.json"
  "${cli[@]}" eval --run "$run" --split validation --views 2x3 --json || return 1
  "${cli[@]}" export --run "$run" --full --out "$WORK/full.safetensors" || return 1
  local arc=$WORK/arc
  "${cli[@]}" finetune --method arc --recipe ssv2 --data "$WORK/shards" --out "$arc" "${model[@]}" \
    --set train.warmup_epochs=0 --set train.save_every_steps=null --set train.epochs=1 || return 1
  "${cli[@]}" export --run "$arc" --merge --out "$WORK/arc-merged.safetensors"
}
export PY WORK W DRY OUT CLIPS_PID
export -f pipeline
stage pipeline 200 bash -c pipeline
rc=$?
result=$($PY - "$OUT/pipeline_summary.json" "$WORK/decode.json" <<'EOF' 2>/dev/null
import json, sys
s = json.load(open(sys.argv[1]))
line = (f"adaptformer {s['backbone']}: {s['samples_per_second']} samples/s (data wait {s.get('data_wait')}), "
        f"peak {s['peak_memory_mb']:,.0f} MiB ({s['peak_memory_kind']}), precision {s['precision']}")
try:
    d = json.load(open(sys.argv[2]))
    line += f"; data.decode=cuda (cpu with --dry): {d['samples_per_second']} samples/s (data wait {d.get('data_wait')})"
except OSError:
    line += "; data.decode=cuda: no summary"
print(line)
EOF
)
merge=$(grep -o 'max |difference| = [^ ,;)]*' "$OUT/pipeline.log" | tail -1 | sed 's/.*= //')
row pipeline "$(status $rc)" "$STAGE_S" "${result:-no summary}${merge:+; arc merge check: max diff $merge}"

kill "$CLIPS_PID" 2>/dev/null
rm -rf "$WORK"
{
  echo "adaptcli GPU check, $(date -u +%Y-%m-%dT%H:%MZ)$( (( DRY )) && echo ', dry run (CPU)'), $(( $(date +%s) - T0 )) s"
  echo
  echo "| stage | status | s | result |"
  echo "| --- | --- | ---: | --- |"
  printf '%s\n' "${ROWS[@]}"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
! grep -qE '\| (FAIL|timeout)' "$OUT/summary.md"
