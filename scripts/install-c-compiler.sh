#!/usr/bin/env bash
# A C compiler for the one native kernel (src/ParaphraseService.Model/Kernels/Native/int8_vnni.c: the int8 sums with
# AVX512-VNNI, which .NET 10 cannot emit). The build compiles it when `cc` is there and goes on without it (the managed
# sums then run on every CPU). Installs Debian's gcc and the C library headers of the installed C library (which
# install-prerequisites.sh may have moved to Debian 13's). Idempotent; without root or apt it only says what is missing.
set -euo pipefail

if command -v cc > /dev/null; then
  echo "c compiler: $(command -v cc) is there; nothing to do."
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
  echo "c compiler: none found, and installing one needs root and apt: the int8 kernel will use its managed sums." >&2
  exit 0
fi
echo "c compiler: installing gcc (for the AVX512-VNNI int8 kernel)."
export DEBIAN_FRONTEND=noninteractive
libc="$(dpkg-query -W -f='${Version}' libc6)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends gcc "libc6-dev=$libc" > /dev/null
echo "c compiler: $(cc --version | head -1)"
