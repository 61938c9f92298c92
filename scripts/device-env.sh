# Sourced by scripts/device-bench.sh and scripts/device-real-size.sh on a GPU machine with no
# network and no Node: unpacks the tarball of scripts/pack-device.sh (or takes the folder the
# calling script sits in, when already unpacked) and sets up its environment. In: HERE (the
# calling script's folder), TARBALL (may be empty). Out: D (the unpacked hilo-device folder),
# NODE, HILO_SHARED, LD_LIBRARY_PATH / VK_DRIVER_FILES where needed, XDG_RUNTIME_DIR.
# Host libraries: Dawn opens libvulkan.so.1 and the wasm rows' BLAS opens libopenblas.so.0; where
# the machine has none, the copies carried in hostlibs/ are put on LD_LIBRARY_PATH. Where no
# Vulkan driver manifest is in the standard folders but NVIDIA's sits under /usr/local/nvidia
# (a container's driver mount), VK_DRIVER_FILES points at it.
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
