#!/bin/sh
# Install OpenBLAS, the native BLAS that the wasm backend hands its matrix products to
# (src/backend/blas.ts): ~10x XNNPACK's wasm SIMD on a 2-core x86 machine. Optional: without
# it hilo runs the same, slower. Idempotent; CI runs it so the BLAS tests run.
set -eu

for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
  if [ -e "$dir/libopenblas.so.0" ]; then
    echo "setup-blas: OpenBLAS already installed ($dir/libopenblas.so.0)"
    exit 0
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y libopenblas0-pthread
echo "setup-blas: installed; \`hilo doctor\` should now show the wasm backend's products in native BLAS"
