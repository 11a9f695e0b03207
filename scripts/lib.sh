# shellcheck shell=bash
# Shared helpers for khalo's scripts. Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides:
#   khalo_step MSG...              print "==> MSG" (a step header)
#   khalo_note MSG...              print "    MSG" (detail under a step)
#   khalo_die MSG...               print "error: MSG" on stderr and exit 1
#   khalo_missing_packages PKG...  print the Debian packages among PKG that are not installed
#   khalo_install_packages PKG...  install the missing ones with apt-get (nothing to do when all are present)

if [[ -n "${_KHALO_LIB_SOURCED:-}" ]]; then
  return 0
fi
_KHALO_LIB_SOURCED=1

khalo_step() {
  printf '==> %s\n' "$*"
}

khalo_note() {
  printf '    %s\n' "$*"
}

khalo_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Prints, one per line, the packages among "$@" that dpkg does not list as installed.
khalo_missing_packages() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)
    if ! grep -qx 'install ok installed' <<<"$status"; then
      printf '%s\n' "$pkg"
    fi
  done
}

# Installs whichever of the given Debian packages are missing. A machine that has all of them
# does no apt work at all. Uses sudo only when not root.
khalo_install_packages() {
  if (($# == 0)); then
    return 0
  fi
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    khalo_die "dpkg-query/apt-get not found: khalo's scripts install dependencies on Debian 12 only." \
      "Install these (or their equivalents) yourself and rerun with KHALO_SKIP_DEPS=1: $*"
  fi

  # Command substitution, not <(...): it needs no /dev/fd (bare chroots and containers).
  local -a missing
  read -r -a missing <<<"$(khalo_missing_packages "$@" | tr '\n' ' ')"
  if ((${#missing[@]} == 0)); then
    khalo_note "all $# packages already installed"
    return 0
  fi
  khalo_note "missing ${#missing[@]} of $# packages: ${missing[*]}"

  local -a as_root=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      khalo_die "not root and sudo is not installed; cannot install: ${missing[*]}." \
        "As root run: apt-get update && apt-get install --no-install-recommends ${missing[*]}"
    fi
    # Without a terminal sudo cannot ask for a password: fail instead of hanging.
    if [[ -t 0 ]]; then
      as_root=(sudo)
    else
      as_root=(sudo -n)
    fi
  fi

  # sudo resets the environment, so pass DEBIAN_FRONTEND through env(1).
  local -a apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600)
  khalo_note "apt-get update"
  "${apt[@]}" update ||
    khalo_die "apt-get update failed (needs root, or passwordless sudo when there is no terminal)"
  khalo_note "apt-get install ${missing[*]}"
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" ||
    khalo_die "apt-get install failed for: ${missing[*]}"

  # Double-check: a package name apt resolved differently would otherwise pass silently.
  read -r -a missing <<<"$(khalo_missing_packages "$@" | tr '\n' ' ')"
  if ((${#missing[@]} != 0)); then
    khalo_die "still not installed after apt-get install: ${missing[*]}"
  fi
}
