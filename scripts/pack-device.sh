#!/usr/bin/env bash
# Build the tarball scripts/device-bench.sh runs on a GPU machine with no network and no Node:
#   node/bin/node (+ the libstdc++/libgcc_s it links, used only if the host's are too old),
#   bench-train.mjs (scripts/bench-train.ts and all of hilo + tfjs bundled by esbuild), the same
#   for bench-real-size.mjs (scripts/bench-real-size.ts: issue 25's real-shape rows), and
#   replica-worker.mjs (the data-parallel replicas' worker, bundled the same way),
#   node_modules/ with only what cannot be bundled: tfjs-backend-wasm's .wasm files (and the
#   threaded build's factory, read as text for its worker threads), koffi with its linux-x64
#   binary (the wasm rows use the machine's OpenBLAS if it has one: src/backend/blas.ts) and
#   webgpu's Dawn addon for linux-x64, shared/ with stories260K (the repository's test fixture)
#   and the PyTorch reference (from ../shared/bench, or $HILO_SHARED/bench),
#   device-bench.sh, device-real-size.sh (+ device-env.sh) and torch-bench-device.py, and hostlibs/ with this machine's Vulkan loader
#   (libvulkan.so.1, which Dawn opens) and OpenBLAS (+ libgfortran, libquadmath), which
#   device-bench.sh uses only where the GPU machine has none of its own.
#   scripts/pack-device.sh [OUT.tar.xz]     (default .hilo-cache/hilo-device.tar.xz, git-ignored)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HILO_SHARED:-$ROOT/../shared}
OUT=${1:-$ROOT/.hilo-cache/hilo-device.tar.xz}
NODE=${NODE_BIN:-/usr/bin/node}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
D=$STAGE/hilo-device
mkdir -p "$D/node/bin" "$D/node/lib" "$D/node_modules/@tensorflow/tfjs-backend-wasm/dist" "$D/node_modules/webgpu/dist" \
  "$D/shared/models" "$D/shared/bench"

cp "$NODE" "$D/node/bin/node"
for lib in libstdc++.so.6 libgcc_s.so.1; do
  src=$(ldd "$NODE" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$src" ] && cp -L "$src" "$D/node/lib/"
done

# One ESM file; native and optional packages stay outside. Bundled CJS code gets `require`, and
# `__dirname` / `__filename` (Emscripten's Node path reads __dirname when the wasm backend starts).
"$ROOT/node_modules/.bin/esbuild" "$ROOT/scripts/bench-train.ts" --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --external:koffi --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __hiloCreateRequire } from 'node:module'; import { fileURLToPath as __hiloPath } from 'node:url'; const require = __hiloCreateRequire(import.meta.url); const __filename = __hiloPath(import.meta.url); const __dirname = __hiloPath(new URL('.', import.meta.url));" \
  --log-level=warning --outfile="$D/bench-train.mjs"
# issue 25's real-shape rows (scripts/device-real-size.sh), bundled the same way
"$ROOT/node_modules/.bin/esbuild" "$ROOT/scripts/bench-real-size.ts" --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --external:koffi --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __hiloCreateRequire } from 'node:module'; import { fileURLToPath as __hiloPath } from 'node:url'; const require = __hiloCreateRequire(import.meta.url); const __filename = __hiloPath(import.meta.url); const __dirname = __hiloPath(new URL('.', import.meta.url));" \
  --log-level=warning --outfile="$D/bench-real-size.mjs"
# Data-parallel replicas (src/train/replicas.ts) start their worker from replica-boot.mjs beside
# the code that starts them: here the bundled worker, with the same banner.
"$ROOT/node_modules/.bin/esbuild" "$ROOT/src/train/replica-worker.ts" --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --external:koffi --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __hiloCreateRequire } from 'node:module'; import { fileURLToPath as __hiloPath } from 'node:url'; const require = __hiloCreateRequire(import.meta.url); const __filename = __hiloPath(import.meta.url); const __dirname = __hiloPath(new URL('.', import.meta.url));" \
  --log-level=warning --outfile="$D/replica-worker.mjs"
echo "await import('./replica-worker.mjs');" > "$D/replica-boot.mjs"
# hilo's wasm SIMD kernels, found beside the code that loads them (src/backend/wasm-simd.ts)
mkdir -p "$D/simd" && cp "$ROOT/src/backend/simd/kernels.wasm" "$D/simd/"

W=$ROOT/node_modules/@tensorflow/tfjs-backend-wasm
cp "$W/package.json" "$D/node_modules/@tensorflow/tfjs-backend-wasm/"
cp "$W"/dist/*.wasm "$D/node_modules/@tensorflow/tfjs-backend-wasm/dist/"
# the threaded build's module factory, which src/backend/wasm-threads.ts hands its pthread workers
mkdir -p "$D/node_modules/@tensorflow/tfjs-backend-wasm/wasm-out"
cp "$W/wasm-out/tfjs-backend-wasm-threaded-simd.js" "$D/node_modules/@tensorflow/tfjs-backend-wasm/wasm-out/"
mkdir -p "$D/node_modules/@koromix/koffi-linux-x64"
cp -r "$ROOT/node_modules/koffi" "$D/node_modules/" && rm -rf "$D/node_modules/koffi/doc" "$D/node_modules/koffi/vendor"
cp -r "$ROOT/node_modules/@koromix/koffi-linux-x64"/{package.json,index.js,linux_x64} "$D/node_modules/@koromix/koffi-linux-x64/"
G=$ROOT/node_modules/webgpu
cp "$G/package.json" "$G/index.js" "$D/node_modules/webgpu/"
cp -r "$G/dist/linux-x64" "$D/node_modules/webgpu/dist/"

cp -r "$ROOT/test/fixtures/models/stories260K" "$D/shared/models/"
cp "$SHARED"/bench/{torch_train_bench.py,ref_model.py,ref_moe.py} "$D/shared/bench/"
cp "$ROOT"/scripts/{device-env.sh,device-bench.sh,device-real-size.sh,torch-bench-device.py} "$D/"
# Shared libraries the GPU machine may lack, each in its own folder so device-bench.sh can add
# exactly the ones missing there to LD_LIBRARY_PATH.
hostlib() { # folder, library names...
  local dir=$D/hostlibs/$1; shift
  mkdir -p "$dir"
  for lib in "$@"; do
    src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
    if [ -n "$src" ]; then cp -L "$src" "$dir/$lib"; else echo "pack-device: no $lib here; not carried" >&2; fi
  done
}
hostlib vulkan libvulkan.so.1
hostlib openblas libopenblas.so.0 libgfortran.so.5 libquadmath.so.0

mkdir -p "$(dirname "$OUT")"
tar -C "$STAGE" -cf - hilo-device | xz -T0 -6 > "$OUT"
echo "$OUT: $(du -h "$OUT" | cut -f1) ($(du -sh "$D" | cut -f1) unpacked)"
