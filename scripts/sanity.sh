#!/usr/bin/env bash
# ansible-test sanity for lxcfleet.lxc.
# ansible-test needs its physical cwd inside .../ansible_collections/<ns>/<name>, so the tracked and
# untracked-but-not-ignored files are copied to a temporary tree and tested there.
# Extra arguments go to ansible-test (e.g. `bash scripts/sanity.sh --test validate-modules`).
# LXCFLEET_SANITY_KEEP=1 keeps the temporary tree (its path is printed).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/env.sh
. "$REPO/scripts/env.sh"

if compgen -G "$REPO/tests/sanity/ignore-*.txt" >/dev/null; then
  for f in "$REPO"/tests/sanity/ignore-*.txt; do
    if [[ -s "$f" ]]; then
      echo "sanity: $f is not empty; this project keeps no sanity ignores" >&2
      exit 1
    fi
  done
fi

# ansible-test bootstraps pip into each sanity venv with a get-pip.py that it downloads from a host
# outside the package registries. Where none is cached, put a stand-in there that does the same
# from PyPI: ensurepip, then `pip install <the pinned pip>`; --no-setuptools/--no-wheel honoured.
install_get_pip_shim() {
  local at_dir ver cache marker='# lxcfleet get-pip stand-in'
  at_dir="$(python3 -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')"
  ver="$(sed -n "s/^ *pip='\([0-9.]*\)',*$/\1/p" "$at_dir/_internal/python_requirements.py" | head -n1)"
  [[ -n "$ver" ]] || { echo "sanity: cannot find ansible-test's pip version" >&2; return 1; }
  cache="$HOME/.ansible/test/cache/get_pip_${ver//./_}.py"
  if [[ -f "$cache" ]] && ! grep -qF "$marker" "$cache"; then return 0; fi  # a real get-pip.py
  mkdir -p "$(dirname "$cache")"
  cat >"$cache.tmp" <<PY
$marker (written by scripts/sanity.sh of lxcfleet.lxc)
"""Bootstrap pip $ver like get-pip.py does, but from ensurepip and PyPI."""
import subprocess
import sys

# ensurepip in a child process: in-process it sets PIP_CONFIG_FILE=/dev/null, hiding pip.conf.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)
unwanted = [name for flag, name in (("--no-setuptools", "setuptools"), ("--no-wheel", "wheel")) if flag in sys.argv]
if unwanted:
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-q", "-y"] + unwanted)
PY
  mv "$cache.tmp" "$cache"
}
install_get_pip_shim

TMP="$(mktemp -d /tmp/lxcfleet-sanity.XXXXXX)"
cleanup() { if [[ "${LXCFLEET_SANITY_KEEP:-0}" == 1 ]]; then echo "sanity: kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
TREE="$TMP/ansible_collections/lxcfleet/lxc"
mkdir -p "$TREE"

# Files git knows or would add; deleted-but-tracked files are skipped.
(cd "$REPO" && git ls-files -z -co --exclude-standard) |
  (cd "$REPO" && while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done) |
  rsync -a --from0 --files-from=- "$REPO/" "$TREE/"

# ansible-test lists files through git when the tree is a repository.
git -C "$TREE" init -q
git -C "$TREE" add -A

cd "$TREE"
# --venv --requirements: each test gets its own venv with its pinned requirements
# (kept under ~/.ansible/test/venv, so only the first run installs). LXCFLEET_SANITY_MODE=--local
# runs the controller side in the current venv instead of a fresh one (a few seconds quicker).
# The venvs are shared by every checkout on this machine: one ansible-test at a time, or two runs
# building the same venv break each other.
exec flock "${LXCFLEET_SANITY_LOCK:-/tmp/lxcfleet-ansible-test.lock}" \
  ansible-test sanity --python 3.11 "${LXCFLEET_SANITY_MODE:---venv}" --requirements --color no "$@"
