#!/usr/bin/env bash
# Issue-9 benchmark on a Linux x86-64 GPU machine with no network and no Node installed.
# Unpacks the tarball made by scripts/pack-device.sh (a Node binary, the bundled benchmark,
# the few node_modules files that cannot be bundled, stories260K and the PyTorch reference),
# then runs, each into its own JSON and log under OUTDIR:
#   hilo on webgpu (Dawn, the machine's GPU), on tensorflow when tfjs-node(-gpu) is importable
#   (it is not carried: absent, that row records why), and on wasm (this machine's CPU),
#   and PyTorch's torch_train_bench.py (its own figure; the script has no CUDA path, so CPU,
#   with as many threads as cores) for the tiny Llama and stories260K.
#   device-bench.sh [TARBALL] [OUTDIR]     defaults: ./hilo-device.tar.xz (or the folder this
#                                           script sits in, when already unpacked), $OUT or ./device-results
# Env: STEPS (10), WARMUP (3), LEAK_STEPS (100), MODELS (tiny,stories), PYTHON (python3), SKIP_TORCH=1, SKIP_WASM=1.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TARBALL=${1:-}
OUTDIR=${2:-${OUT:-$PWD/device-results}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
if [ -x "$HERE/node/bin/node" ] && [ -z "$TARBALL" ]; then
  D=$HERE
else
  TARBALL=${TARBALL:-$PWD/hilo-device.tar.xz}
  WORK=$(mktemp -d)
  tar -C "$WORK" -xJf "$TARBALL" || { echo "cannot unpack $TARBALL" >&2; exit 2; }
  D=$WORK/hilo-device
fi
NODE=$D/node/bin/node
# The carried libstdc++ only when the host's is too old for this Node.
if ! "$NODE" --version >/dev/null 2>&1; then export LD_LIBRARY_PATH=$D/node/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
"$NODE" --version >/dev/null || { echo "the carried node does not run here" >&2; exit 2; }
export HILO_SHARED=$D/shared
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
  (cd "$D" && "$NODE" bench-train.mjs --backend "$b" --steps "$STEPS" --warmup "${WARMUP:-3}" --leak-steps "$LEAK_STEPS" \
    --models "${MODELS:-tiny,stories}" --json "$OUTDIR/hilo-$b.json" "$@") 2>&1 | tee -a "$OUTDIR/hilo-$b.log"
  return "${PIPESTATUS[0]}"
}
status=0
bench webgpu || status=1
bench tensorflow || echo "tensorflow backend not available here (see hilo-tensorflow.log)"
[ "${SKIP_WASM:-0}" = 1 ] || bench wasm || status=1
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  for m in tiny stories; do
    args=(--threads "$(nproc)")
    [ "$m" = stories ] && args+=(--model-dir "$D/shared/models/stories260K")
    echo "== torch $m" | tee "$OUTDIR/torch-$m.log"
    OMP_WAIT_POLICY=PASSIVE $PY "$D/shared/bench/torch_train_bench.py" "${args[@]}" > "$OUTDIR/torch-$m.json" 2>> "$OUTDIR/torch-$m.log" || status=1
    tail -c 400 "$OUTDIR/torch-$m.json"; echo
  done
fi
echo "results in $OUTDIR"
exit $status
