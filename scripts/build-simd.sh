#!/bin/sh
# Build src/backend/simd/kernels.wasm from kernels.c: the fused wasm SIMD kernels that
# src/backend/wasm-simd.ts loads into tfjs-backend-wasm's memory. The .wasm is committed, so
# neither users nor CI need this; rerun it after changing kernels.c. Needs clang and wasm-ld
# (Debian: apt-get install clang-14 lld-14).
set -eu
DIR=$(cd "$(dirname "$0")/../src/backend/simd" && pwd)
CC=${CC:-$(command -v clang-14 || command -v clang)}
"$CC" --target=wasm32 -O3 -msimd128 -nostdlib -ffreestanding -Wall -Werror \
  -Wl,--no-entry -Wl,--import-memory -Wl,--strip-all \
  -o "$DIR/kernels.wasm" "$DIR/kernels.c"
# The module shares tfjs's heap: it must not write anything of its own there (no data segments,
# no stack, so no use of the stack-pointer global).
OBJDUMP=${OBJDUMP:-$(command -v llvm-objdump-14 || command -v llvm-objdump)}
if "$OBJDUMP" -h "$DIR/kernels.wasm" | grep -qw DATA || "$OBJDUMP" -d "$DIR/kernels.wasm" | grep -q 'global\.'; then
  echo "build-simd: kernels.wasm has data or uses the stack; it would write into tfjs's heap" >&2
  exit 1
fi
echo "$DIR/kernels.wasm: $(wc -c < "$DIR/kernels.wasm") bytes"
