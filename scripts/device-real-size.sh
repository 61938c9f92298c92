#!/usr/bin/env bash
# PyTorch CUDA reference rows at the real shapes of issue 25, on a lent GPU machine (python3 there
# holds torch with CUDA): MoE-LoRA (4 experts, r 8, top-2, all 7 projections), float32, TF32 off,
# synchronised timing (scripts/torch-bench-device.py), random init from the shape alone (no
# weights travel; made on the GPU: --init-on-device), batch 8 x 512 unless BATCH/SEQ say otherwise.
#   scripts/device-real-size.sh BENCH_DIR [OUTDIR]
# BENCH_DIR holds ../shared/bench's torch_train_bench.py, ref_model.py and ref_moe.py (the device
# tool does not carry ../shared: copy them into an ignored folder of the repo and carry it).
# Env: SHAPES (qwen2.5-0.5b,llama-3.2-1b,llama-2-7b), STEPS (5), WARMUP (2), ROW_TIMEOUT (240 s),
#   THREADS (CPU threads for torch, 2: the rest of the machine may run other work meanwhile),
#   DEVICE (cuda; cpu for a smoke test of this script on a machine without a GPU).
# Each shape writes torch-cuda-SHAPE.json (one JSON line, "peak_mib" per row) and .log to OUTDIR.
# The 7B row runs the MoE-LoRA row alone on the base itself (--in-place): a float32 7B base is
# 27 GB, and the LoRA/forward rows would each need another copy.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${1:?usage: device-real-size.sh BENCH_DIR [OUTDIR]}
OUTDIR=${2:-${OUT:-$PWD/device-results}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
shape_args() { # name -> torch_train_bench.py model flags (the published configs' values)
  case $1 in
    qwen2.5-0.5b) echo "--vocab 151936 --hidden 896 --layers 24 --heads 14 --kv-heads 2 --intermediate 4864 --rope-theta 1000000 --rms-eps 1e-6 --tie-embeddings --max-pos 4096" ;;
    llama-3.2-1b) echo "--vocab 128256 --hidden 2048 --layers 16 --heads 32 --kv-heads 8 --intermediate 8192 --rope-theta 500000 --rms-eps 1e-5 --tie-embeddings --max-pos 4096" ;;
    llama-2-7b) echo "--vocab 32000 --hidden 4096 --layers 32 --heads 32 --kv-heads 32 --intermediate 11008 --rope-theta 10000 --rms-eps 1e-5 --max-pos 4096" ;;
    *) echo "unknown shape $1" >&2; return 1 ;;
  esac
}
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1
} | tee "$OUTDIR/env-real-size.txt"
status=0
for s in $(echo "${SHAPES:-qwen2.5-0.5b,llama-3.2-1b,llama-2-7b}" | tr , ' '); do
  args=$(shape_args "$s") || { status=1; continue; }
  extra=(--init-on-device)
  [ "$s" = llama-2-7b ] && extra+=(--in-place)
  rows=(); [ "$s" = llama-2-7b ] && rows=(--no-alt-mode --skip-lora --skip-forward)
  [ "$s" != llama-2-7b ] && rows=(--no-alt-mode)
  echo "== torch cuda $s" | tee "$OUTDIR/torch-cuda-$s.log"
  start=$(date +%s)
  # shellcheck disable=SC2086
  PYTHONUNBUFFERED=1 timeout "${ROW_TIMEOUT:-240}" $PY "$HERE/torch-bench-device.py" --device "${DEVICE:-cuda}" "${extra[@]}" --bench-dir "$BENCH" -- \
    $args "${rows[@]}" --batch "${BATCH:-8}" --seq "${SEQ:-512}" --steps "${STEPS:-5}" --warmup "${WARMUP:-2}" \
    --threads "${THREADS:-2}" --init hf > "$OUTDIR/torch-cuda-$s.json" 2>> "$OUTDIR/torch-cuda-$s.log" || status=1
  echo "$s: $(( $(date +%s) - start )) s; $(tail -c 300 "$OUTDIR/torch-cuda-$s.json")" | tee -a "$OUTDIR/torch-cuda-$s.log"
done
exit $status
