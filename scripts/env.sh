# shellcheck shell=bash
# Source this file: `. scripts/env.sh`. Sets PATH and ANSIBLE_* for this repository.
_lxcfleet_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export LXCFLEET_REPO="$_lxcfleet_repo"
export LXCFLEET_VENV="${LXCFLEET_VENV:-/opt/lxcfleet-venv}"
case ":$PATH:" in
  *":$LXCFLEET_VENV/bin:"*) ;;
  *) export PATH="$LXCFLEET_VENV/bin:$PATH" ;;
esac
export ANSIBLE_COLLECTIONS_PATH="$_lxcfleet_repo/.build/collections"
# Modules run on the managed host with Debian's Python (python3-pyroute2, and python3-lxc
# for community.general.lxc_container in the benchmark).
export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
export ANSIBLE_NOCOWS=1
export ANSIBLE_RETRY_FILES_ENABLED=False
export ANSIBLE_LOCALHOST_WARNING=False
export ANSIBLE_INVENTORY_UNPARSED_WARNING=False
export ANSIBLE_DEPRECATION_WARNINGS="${ANSIBLE_DEPRECATION_WARNINGS:-True}"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-False}"
export ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_LOCAL_TEMP="${ANSIBLE_LOCAL_TEMP:-/tmp/lxcfleet-ansible-local}"
export ANSIBLE_CALLBACK_RESULT_FORMAT="${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml}"
export PYTHONDONTWRITEBYTECODE=1
unset _lxcfleet_repo
