#!/usr/bin/env bash
# Issue-9 benchmark on a Linux x86-64 GPU machine with no network and no Node installed.
# Unpacks the tarball made by scripts/pack-device.sh (a Node binary, the bundled benchmark,
# the few node_modules files that cannot be bundled, stories260K and the PyTorch reference),
# then runs, each into its own JSON and log under OUTDIR:
#   hilo on webgpu (Dawn, the machine's GPU), on tensorflow when tfjs-node(-gpu) is importable
#   (it is not carried: absent, that row records why), and on wasm (this machine's CPU),
#   and PyTorch's torch_train_bench.py for the tiny Llama and stories260K: on the GPU through
#   torch-bench-device.py (float32, synchronised timing) when torch sees CUDA, and on the CPU
#   with as many threads as cores.
#   device-bench.sh [TARBALL] [OUTDIR]     defaults: ./hilo-device.tar.xz (or the folder this
#                                           script sits in, when already unpacked), $OUT or ./device-results
# Host libraries and the Vulkan driver: scripts/device-env.sh.
# Env: STEPS (10), WARMUP (3), LEAK_STEPS (100), MODELS (tiny,stories), PYTHON (python3), SKIP_TORCH=1,
#   SKIP_TORCH_CPU=1 (PyTorch on the GPU only), SKIP_WASM=1, ROW_TIMEOUT (seconds per hilo backend or torch run, 600), PROFILE=1 (also one profiled
#   webgpu step of the tiny Llama: kernel times by kernel and by product shape).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TARBALL=${1:-}
OUTDIR=${2:-${OUT:-$PWD/device-results}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
# shellcheck source=device-env.sh
source "$HERE/device-env.sh"
T=${ROW_TIMEOUT:-600}
PY=${PYTHON:-python3}
STEPS=${STEPS:-10}
LEAK_STEPS=${LEAK_STEPS:-100}
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"; echo "load: $(cat /proc/loadavg)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "node: $NODE $("$NODE" --version)"; echo "python: $($PY --version 2>&1)"
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1
} | tee "$OUTDIR/env.txt"

bench() { # backend, extra args...
  local b=$1; shift
  echo "== hilo $b" | tee "$OUTDIR/hilo-$b.log"
  (cd "$D" && timeout "$T" "$NODE" bench-train.mjs --backend "$b" --steps "$STEPS" --warmup "${WARMUP:-3}" --leak-steps "$LEAK_STEPS" \
    --models "${MODELS:-tiny,stories}" --json "$OUTDIR/hilo-$b.json" "$@") 2>&1 | tee -a "$OUTDIR/hilo-$b.log"
  return "${PIPESTATUS[0]}"
}
torch_row() { # cuda|cpu, model
  local d=$1 m=$2 margs=()
  [ "$m" = stories ] && margs+=(--model-dir "$D/shared/models/stories260K")
  local name=torch-$m; [ "$d" = cuda ] && name=torch-cuda-$m
  echo "== torch $d $m" | tee "$OUTDIR/$name.log"
  if [ "$d" = cuda ]; then
    timeout "$T" $PY "$D/torch-bench-device.py" --device cuda --bench-dir "$D/shared/bench" -- --steps "$STEPS" "${margs[@]}" \
      > "$OUTDIR/$name.json" 2>> "$OUTDIR/$name.log"
  else
    OMP_WAIT_POLICY=PASSIVE timeout "$T" $PY "$D/shared/bench/torch_train_bench.py" --threads "$(nproc)" --steps "$STEPS" "${margs[@]}" \
      > "$OUTDIR/$name.json" 2>> "$OUTDIR/$name.log"
  fi
  local rc=$?
  tail -c 400 "$OUTDIR/$name.json"; echo
  return $rc
}
# The GPU rows first, so that a run cut short still has them.
status=0
bench webgpu || status=1
bench tensorflow || echo "tensorflow backend not available here (see hilo-tensorflow.log)"
if [ "${SKIP_TORCH:-0}" != 1 ] && [ "$($PY -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null)" = 1 ]; then
  for m in tiny stories; do torch_row cuda "$m" || status=1; done
fi
if [ "${PROFILE:-0}" = 1 ]; then # where a webgpu step's time goes: tf.profile's kernel times against the wall clock
  echo "== hilo webgpu profile (tiny)" | tee "$OUTDIR/hilo-webgpu-profile.log"
  (cd "$D" && timeout "$T" "$NODE" bench-train.mjs --backend webgpu --models tiny --steps 2 --warmup 1 --leak-steps 0 --profile) \
    >> "$OUTDIR/hilo-webgpu-profile.log" 2>&1 || status=1
fi
[ "${SKIP_WASM:-0}" = 1 ] || bench wasm || status=1
if [ "${SKIP_TORCH:-0}" != 1 ] && [ "${SKIP_TORCH_CPU:-0}" != 1 ]; then
  for m in tiny stories; do torch_row cpu "$m" || status=1; done
fi
echo "results in $OUTDIR"
exit $status
