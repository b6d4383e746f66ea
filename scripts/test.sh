#!/usr/bin/env bash
# The whole lxcfleet.lxc suite, in this order:
#   unit (pytest tests/unit), integration (pytest tests/integration, real LXC),
#   molecule (molecule test -s NAME for each scenario of LXCFLEET_MOLECULE_SCENARIOS, on host containers),
#   sanity (scripts/sanity.sh: ansible-test sanity), lint (ansible-lint), changelog (antsibull-changelog lint).
# Every stage runs even when an earlier one failed; the exit code is non-zero if any failed.
# sanity, lint and changelog run in the background during integration and molecule (see below).
# LXCFLEET_TEST_STAGES="unit lint" runs a subset. Extra arguments go to both pytest runs.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO" || exit 1

BOOT_START=$(date +%s)
bash "$REPO/scripts/bootstrap.sh" || { echo "test.sh: bootstrap failed" >&2; exit 1; }
# shellcheck source=scripts/env.sh
. "$REPO/scripts/env.sh"

STAGES="${LXCFLEET_TEST_STAGES:-unit integration molecule sanity lint changelog}"
# The molecule scenarios that CI runs (those that pass reliably; docs/testing.md lists them all).
MOLECULE_SCENARIOS="${LXCFLEET_MOLECULE_SCENARIOS-default multihost reboot unprivileged}"
declare -a SUMMARY=("$(printf '%-12s %-18s %5ss' bootstrap passed "$(($(date +%s) - BOOT_START))")")
FAILED=0

run_stage() {
  local name="$1"; shift
  case " $STAGES " in *" $name "*) ;; *) return 0 ;; esac
  local start end rc status
  printf '\n===== %s: %s =====\n' "$name" "$*"
  start=$(date +%s)
  "$@"
  rc=$?
  end=$(date +%s)
  case "$rc" in
    0) status=passed ;;
    *) status="FAILED (rc=$rc)"; FAILED=1 ;;
  esac
  SUMMARY+=("$(printf '%-12s %-18s %5ss' "$name" "$status" "$((end - start))")")
}

# pytest exits 5 when it collected no test; tests/unit may legitimately be empty early on.
pytest_allow_empty() {
  local rc
  pytest "$@"
  rc=$?
  if [[ $rc -eq 5 ]]; then echo "(no tests collected)"; return 0; fi
  return "$rc"
}

# Every scenario runs (a failed one does not stop the others); up to LXCFLEET_MOLECULE_JOBS of them at
# once (default 4, all of them: they use different host containers, bridges and subnets, and molecule keeps each
# scenario's state in its own ephemeral folder). Each scenario's output is printed whole when it ends.
molecule_scenarios() {
  local jobs="${LXCFLEET_MOLECULE_JOBS:-4}" logs name pid rc=0
  local -A pids=()
  logs="$(mktemp -d)"
  run_one() {
    local start=$1; shift
    if molecule test -s "$1" >"$logs/$1.log" 2>&1; then echo passed >"$logs/$1.status"
    else echo FAILED >"$logs/$1.status"; fi
    echo "$(($(date +%s) - start))" >"$logs/$1.seconds"
  }
  report() {
    printf '\n----- molecule test -s %s -----\n' "$1"
    cat "$logs/$1.log"
    SUMMARY+=("$(printf '  %-12s %-16s %5ss' "$1" "$(cat "$logs/$1.status")" "$(cat "$logs/$1.seconds")")")
    [[ "$(cat "$logs/$1.status")" == passed ]] || rc=1
  }
  for name in $MOLECULE_SCENARIOS; do
    while (( ${#pids[@]} >= jobs )); do
      wait -n
      for pid in "${!pids[@]}"; do kill -0 "$pid" 2>/dev/null || unset "pids[$pid]"; done
    done
    run_one "$(date +%s)" "$name" &
    pids[$!]=$name
    echo "molecule: started $name ($(date +%T))"
  done
  wait
  for name in $MOLECULE_SCENARIOS; do report "$name"; done
  rm -rf "$logs"
  return "$rc"
}

# sanity, lint and changelog touch no LXC and use about one core: they run one after another in a
# background subshell while integration and molecule run (integration leaves the second core mostly
# idle); its output is printed whole after molecule, and its summary rows and failure are carried back
# through files. LXCFLEET_TEST_SERIAL=1 runs them in order instead.
late_stages() {
  run_stage sanity bash "$REPO/scripts/sanity.sh"
  run_stage lint ansible-lint
  run_stage changelog antsibull-changelog lint
}

run_stage unit pytest_allow_empty -p no:cacheprovider tests/unit "$@"
BG_PID=""
if [[ "${LXCFLEET_TEST_SERIAL:-0}" != 1 ]]; then
  BG_LOGS="$(mktemp -d)"
  (
    first=${#SUMMARY[@]}
    late_stages
    : >"$BG_LOGS/summary"
    if (( ${#SUMMARY[@]} > first )); then printf '%s\n' "${SUMMARY[@]:first}" >"$BG_LOGS/summary"; fi
    echo "$FAILED" >"$BG_LOGS/failed"
  ) >"$BG_LOGS/output" 2>&1 </dev/null &
  BG_PID=$!
  echo "test.sh: sanity, lint and changelog started in the background ($(date +%T))"
fi
run_stage integration pytest -p no:cacheprovider -rfEs --durations=0 --durations-min=1 tests/integration "$@"
run_stage molecule molecule_scenarios
if [[ -n "$BG_PID" ]]; then
  wait "$BG_PID"
  printf '\n(sanity, lint and changelog ran in the background)\n'
  cat "$BG_LOGS/output"
  mapfile -t -O "${#SUMMARY[@]}" SUMMARY <"$BG_LOGS/summary"
  [[ "$(cat "$BG_LOGS/failed")" == 0 ]] || FAILED=1
  rm -rf "$BG_LOGS"
else
  late_stages
fi

printf '\n===== summary =====\n'
printf '%s\n' "${SUMMARY[@]}"
if [[ $FAILED -ne 0 ]]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all stages passed"
