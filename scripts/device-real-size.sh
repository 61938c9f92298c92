#!/usr/bin/env bash
# Issue 25 on a GPU machine (no network, no Node), in one command of at most BUDGET seconds:
# hilo's rows on webgpu (scripts/bench-real-size.ts, bundled by scripts/pack-device.sh) and
# PyTorch's CUDA reference rows (scripts/torch-bench-device.py: float32, TF32 off, synchronised
# timing, random init made on the GPU) at the real shapes Qwen2.5-0.5B, Llama-3.2-1B and
# Llama-2-7B, batch 8 x 512, MoE-LoRA with 4 experts, rank 8, top-2 on all 7 projections. A shape's
# hilo row runs just before its torch row, so each pair sees the machine in the same state.
#   scripts/device-real-size.sh [TARBALL] [OUTDIR]   (TARBALL: scripts/pack-device.sh's, default
#       ./hilo-device.tar.xz, or the folder this script sits in when already unpacked;
#       OUTDIR: $OUT or ./device-results)
# Writes to OUTDIR: env-real-size.txt; hilo-webgpu-SHAPE.jsonl (one JSON line a row: step_ms,
# tokens_per_s, load_s, first_step_s, peak_rss_mib, or {"error": ...}) and .log;
# torch-cuda-SHAPE.json (one JSON line, "peak_mib" per row) and .log; summary.jsonl (one line per
# shape and side: exit status and seconds).
# Env: SHAPES (qwen2.5-0.5b,llama-3.2-1b,llama-2-7b; `tiny` for a smoke run), BATCH (8), SEQ (512),
#   STEPS (2 timed, after WARMUP 1), DTYPE (bfloat16: hilo's frozen weights; torch's are float32),
#   BUDGET (570 s for the whole script: each row gets at most what is left), HILO_TIMEOUT (150 s a
#   shape), ROW_TIMEOUT (90 s a torch shape), THREADS (torch CPU threads, 2), DEVICE (cuda; cpu to
#   smoke-test on a machine without one), SKIP_TORCH=1, SKIP_HILO=1, CHECKPOINT=1 (hilo recomputes
#   each layer in the backward), PYTHON (python3).
# The 7B rows are the MoE-LoRA step alone (torch: on the base itself, --in-place: a float32 7B is
# 27 GB and the LoRA/forward rows would each need another copy); the others add the frozen forward.
set -uo pipefail
START=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
TARBALL=${1:-}
OUTDIR=${2:-${OUT:-$PWD/device-results}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
# shellcheck source=device-env.sh
source "$HERE/device-env.sh"
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-570}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
limit() { local want=$1 l; l=$(left); [ "$l" -lt "$want" ] && want=$l; echo "$want"; }
shape_args() { # name -> torch_train_bench.py model flags (the published configs' values)
  case $1 in
    qwen2.5-0.5b) echo "--vocab 151936 --hidden 896 --layers 24 --heads 14 --kv-heads 2 --intermediate 4864 --rope-theta 1000000 --rms-eps 1e-6 --tie-embeddings --max-pos 4096" ;;
    llama-3.2-1b) echo "--vocab 128256 --hidden 2048 --layers 16 --heads 32 --kv-heads 8 --intermediate 8192 --rope-theta 500000 --rms-eps 1e-5 --tie-embeddings --max-pos 4096" ;;
    llama-2-7b) echo "--vocab 32000 --hidden 4096 --layers 32 --heads 32 --kv-heads 32 --intermediate 11008 --rope-theta 10000 --rms-eps 1e-5 --max-pos 4096" ;;
    tiny) echo "--vocab 4096 --hidden 256 --layers 4 --heads 8 --kv-heads 4 --intermediate 688 --rope-theta 10000 --rms-eps 1e-5 --max-pos 2048" ;;
    *) echo "unknown shape $1" >&2; return 1 ;;
  esac
}
summary() { # side, shape, status, seconds
  echo "{\"side\":\"$1\",\"shape\":\"$2\",\"status\":$3,\"seconds\":$4}" >> "$OUTDIR/summary.jsonl"
}
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"; echo "load: $(cat /proc/loadavg)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "node: $NODE $("$NODE" --version)"
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1
  echo "batch ${BATCH:-8} x ${SEQ:-512}, steps ${STEPS:-2} after ${WARMUP:-1} warm-up, budget $BUDGET s"
} | tee "$OUTDIR/env-real-size.txt"
status=0
for s in $(echo "${SHAPES:-qwen2.5-0.5b,llama-3.2-1b,llama-2-7b}" | tr , ' '); do
  args=$(shape_args "$s") || { status=1; continue; }
  seven=0; [ "$s" = llama-2-7b ] && seven=1
  if [ "${SKIP_HILO:-0}" != 1 ]; then
    t=$(limit "${HILO_TIMEOUT:-150}")
    if [ "$t" -lt 10 ]; then echo "hilo $s: no time left in the budget" | tee -a "$OUTDIR/hilo-webgpu-$s.log"; summary hilo "$s" 124 0; status=1
    else
      rows=moe,forward; [ $seven = 1 ] && rows=moe
      ck=(); [ "${CHECKPOINT:-0}" = 1 ] && ck=(--checkpoint)
      echo "== hilo webgpu $s (at most $t s)" | tee "$OUTDIR/hilo-webgpu-$s.log"
      rm -f "$OUTDIR/hilo-webgpu-$s.jsonl"
      t0=$(date +%s)
      (cd "$D" && timeout "$t" "$NODE" bench-real-size.mjs --backend webgpu --shape "$s" --batch "${BATCH:-8}" --seq "${SEQ:-512}" \
        --steps "${STEPS:-2}" --warmup "${WARMUP:-1}" --rows "$rows" --dtype "${DTYPE:-bfloat16}" "${ck[@]}" --json "$OUTDIR/hilo-webgpu-$s.jsonl") \
        >> "$OUTDIR/hilo-webgpu-$s.log" 2>&1
      rc=$?; [ $rc = 0 ] || status=1
      summary hilo "$s" $rc $(( $(date +%s) - t0 ))
      echo "hilo $s: rc $rc, $(( $(date +%s) - t0 )) s; $(tail -c 600 "$OUTDIR/hilo-webgpu-$s.jsonl" 2>/dev/null)"
    fi
  fi
  if [ "${SKIP_TORCH:-0}" != 1 ]; then
    t=$(limit "${ROW_TIMEOUT:-90}")
    if [ "$t" -lt 10 ]; then echo "torch $s: no time left in the budget" | tee -a "$OUTDIR/torch-cuda-$s.log"; summary torch "$s" 124 0; status=1; continue; fi
    extra=(--init-on-device)
    trows=(--no-alt-mode)
    [ $seven = 1 ] && { extra+=(--in-place); trows+=(--skip-lora --skip-forward); }
    echo "== torch ${DEVICE:-cuda} $s (at most $t s)" | tee "$OUTDIR/torch-cuda-$s.log"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 timeout "$t" $PY "$D/torch-bench-device.py" --device "${DEVICE:-cuda}" "${extra[@]}" --bench-dir "$D/shared/bench" -- \
      $args "${trows[@]}" --batch "${BATCH:-8}" --seq "${SEQ:-512}" --steps "${STEPS:-2}" --warmup "${WARMUP:-1}" \
      --threads "${THREADS:-2}" --init hf > "$OUTDIR/torch-cuda-$s.json" 2>> "$OUTDIR/torch-cuda-$s.log"
    rc=$?; [ $rc = 0 ] || status=1
    summary torch "$s" $rc $(( $(date +%s) - t0 ))
    echo "torch $s: rc $rc, $(( $(date +%s) - t0 )) s; $(tail -c 400 "$OUTDIR/torch-cuda-$s.json")"
  fi
done
echo "results in $OUTDIR ($(( $(date +%s) - START )) s)"
exit $status
