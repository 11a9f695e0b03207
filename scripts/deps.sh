#!/usr/bin/env bash
# Installs the Debian 12 packages khalo needs to build, test, install and format-check, when
# they are missing. A machine that already has them does no apt work at all.
#
# Usage: scripts/deps.sh [EXTRA_PACKAGE...]
#   Extra arguments are installed too (e.g. scripts/deps.sh slurmctld slurmd slurm-client munge).
#   Other scripts can instead source scripts/lib.sh and call khalo_install_packages PKG...
# Runs apt-get directly as root, through sudo otherwise.
# Slurm (slurmctld slurmd slurm-client munge) is not in the list: scripts/slurm.sh installs it
# when missing, and skips its checks instead of failing where it cannot be installed.
set -euo pipefail

# The one list of khalo's Debian packages.
KHALO_PACKAGES=(
  # toolchain
  g++ make cmake pkg-config ca-certificates
  # libraries khalo builds against
  libtrilinos-kokkos-dev libopenmpi-dev openmpi-bin libhdf5-openmpi-dev libpng-dev
  # tests, benchmarks, examples and tools
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  hdf5-tools
  # formatting check, API reference (the docs target)
  clang-format-14 doxygen
  # python helpers (reading HDF5 output, reference checks)
  python3 python3-numpy python3-h5py
  # the Python module (src/python) and its tests: pybind11, mpi4py, pytest, PyTorch
  python3-dev python3-pybind11 pybind11-dev python3-mpi4py python3-pytest python3-torch
)

case "${1:-}" in
  -h | --help)
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    printf '\nPackages: %s\n' "${KHALO_PACKAGES[*]}"
    exit 0
    ;;
esac

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

khalo_install_packages "${KHALO_PACKAGES[@]}" "$@"
