#!/bin/sh
# Install a Vulkan driver so Dawn (the `webgpu` npm package) finds a WebGPU adapter on a
# machine without a GPU: Mesa's lavapipe, a software Vulkan device. Idempotent; CI runs it
# before the tests so test/backend's webgpu parity tests run instead of being skipped.
# Debian 12's own Mesa (22.3) is older than the one this was tested with (25.0 from
# bookworm-backports), so on bookworm the backports version is installed.
set -eu

if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  echo "setup-webgpu: lavapipe already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

. /etc/os-release
if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
  $SUDO apt-get update
  $SUDO apt-get install -y -t bookworm-backports mesa-vulkan-drivers
else
  $SUDO apt-get update
  $SUDO apt-get install -y mesa-vulkan-drivers
fi
echo "setup-webgpu: installed; \`hilo doctor\` should now list a webgpu adapter"
