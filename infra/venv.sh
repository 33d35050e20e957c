# Sourced by emulator.sh and tools.sh: make_venv DIR creates a Python virtualenv at DIR.
# Debian's python3 ships without the venv module's ensurepip (package python3-venv): as root
# on Debian that is installed with apt-get and the creation retried; otherwise the error
# says what to install.

make_venv() {
  local venv=$1
  if ! command -v python3 >/dev/null; then
    echo "error: python3 is not installed; the tools run from a Python 3 virtualenv" >&2
    return 1
  fi
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null || ! python3 -m venv "$venv" >&2; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && [ -r /etc/debian_version ] && command -v apt-get >/dev/null; then
      echo "python3 -m venv is unavailable; installing python3-venv from Debian" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y --no-install-recommends python3-venv >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends python3-venv >&2; } \
        || { echo "error: apt-get could not install python3-venv" >&2; return 1; }
      if python3 -m venv "$venv" >&2; then
        return 0
      fi
      rm -rf "$venv"
    fi
    echo "error: cannot create a virtualenv with $(command -v python3) ($(python3 --version 2>&1))." >&2
    echo "       Install Python 3's venv module (Debian/Ubuntu: apt-get install python3-venv, as root) and retry." >&2
    return 1
  fi
}
