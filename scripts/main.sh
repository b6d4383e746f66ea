#!/usr/bin/env bash
# Prepare this machine (scripts/bootstrap.sh) and provision a small fleet with playbooks/site.yml.
# Extra arguments go to ansible-playbook, e.g. `bash scripts/main.sh --check --diff`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
bash "$REPO/scripts/bootstrap.sh"
# shellcheck source=scripts/env.sh
. "$REPO/scripts/env.sh"
cd "$REPO"
exec ansible-playbook -i localhost, -c local playbooks/site.yml "$@"
