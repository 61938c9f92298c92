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
# Host libraries: Dawn opens libvulkan.so.1 and the wasm rows' BLAS opens libopenblas.so.0; where
# the machine has none, the copies carried in hostlibs/ are put on LD_LIBRARY_PATH. Where no
# Vulkan driver manifest is in the standard folders but NVIDIA's sits under /usr/local/nvidia
# (a container's driver mount), VK_DRIVER_FILES points at it.
# Env: STEPS (10), WARMUP (3), LEAK_STEPS (100), MODELS (tiny,stories), PYTHON (python3), SKIP_TORCH=1,
#   SKIP_TORCH_CPU=1 (PyTorch on the GPU only), SKIP_WASM=1, ROW_TIMEOUT (seconds per hilo backend or torch run, 600), PROFILE=1 (also one profiled
#   webgpu step of the tiny Llama: kernel times by kernel and by product shape).
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
# (read whole first: with pipefail, grep -q closing the pipe early would fail ldconfig's side and
# a library the machine has would read as missing)
LIBS=$({ ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null)
for pair in vulkan:libvulkan.so.1 openblas:libopenblas.so.0; do
  dir=${pair%%:*} lib=${pair#*:}
  if ! grep -q "^[[:space:]]*$lib " <<< "$LIBS" && [ -e "$D/hostlibs/$dir/$lib" ]; then
    export LD_LIBRARY_PATH=$D/hostlibs/$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "no $lib on this machine: using the carried one"
  fi
done
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -z "$(find /usr/share/vulkan/icd.d /etc/vulkan/icd.d -name '*.json' 2>/dev/null)" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
    [ -e "$f" ] && { export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f; echo "Vulkan driver manifest: $f"; break; }
  done
fi
[ -n "${XDG_RUNTIME_DIR:-}" ] || { XDG_RUNTIME_DIR=$(mktemp -d); export XDG_RUNTIME_DIR; }
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
