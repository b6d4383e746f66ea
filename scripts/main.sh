#!/usr/bin/env bash
# The main job: a sandbox LXC host on this machine, and the example site on it.
#
#   bash scripts/main.sh                  prepare, create (or reuse) the sandbox, run playbooks/site.yml, show the fleet
#   bash scripts/main.sh --check --diff   extra arguments go to ansible-playbook for site.yml
#   bash scripts/main.sh --teardown       remove the sandbox (host container, its bridge, the state folder)
#
# Steps: scripts/bootstrap.sh; the host image (tests/testbed/host_image.sh) and the test image
# server's files (tests/testbed/image_server.py build), both cached after the first run;
# playbooks/sandbox.yml makes the sandbox host container lxcfleet-sandbox (Debian 12 booting systemd,
# sshd) on its own bridge; the test image server runs inside the sandbox's network namespace for the
# length of the run (the sandbox reaches it at https://127.0.0.1:8443; nothing leaves this machine);
# playbooks/site.yml runs over SSH with inventory/example plus the sandbox's inventory file; then the
# fleet is listed (the lxcfleet.lxc.containers inventory plugin and the live port forwards) and a
# published port is fetched from this machine. A second run changes nothing. See docs/main-job.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE="${LXCFLEET_MAIN_STATE:-/var/lib/lxcfleet-main}"
SANDBOX=lxcfleet-sandbox
LXC_HOST=lxchost1        # the LXC host of inventory/example that the sandbox stands in for
IMAGE_PORT=8443

log() { printf '[main] %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

TEARDOWN=0
if [[ "${1:-}" == "--teardown" ]]; then
  TEARDOWN=1
  shift
fi

T0=$(now)
bash "$REPO/scripts/bootstrap.sh"
# shellcheck source=scripts/env.sh
. "$REPO/scripts/env.sh"
cd "$REPO"
mkdir -p "$STATE"
chmod 0700 "$STATE"

stop_image_server() {
  if [[ -f "$STATE/image-server.json" ]]; then
    python3 tests/testbed/image_server.py stop --state "$STATE/image-server.json" >/dev/null || true
  fi
}

if ((TEARDOWN)); then
  stop_image_server
  ansible-playbook -i localhost, playbooks/sandbox.yml -e sandbox_state=absent -e "sandbox_state_dir=$STATE"
  rm -rf "$STATE"
  log "sandbox removed ($(since "$T0") s)"
  exit 0
fi

# ------------------------------------------------------------ images (cached after the first run)
T_IMG=$(now)
HOST_IMAGE="$(bash tests/testbed/host_image.sh)"
IMAGES="$(python3 tests/testbed/image_server.py build --host-image "$HOST_IMAGE")"
log "host image $HOST_IMAGE, test images $IMAGES ($(since "$T_IMG") s)"

# ------------------------------------------------------------ the sandbox host container
T_SBX=$(now)
if ! ansible-playbook -i localhost, playbooks/sandbox.yml \
  -e sandbox_state=present -e "sandbox_state_dir=$STATE" -e "sandbox_host_image=$HOST_IMAGE" \
  -e "sandbox_images=$IMAGES" -e "sandbox_image_port=$IMAGE_PORT" -e "sandbox_lxc_host=$LXC_HOST" \
  >"$STATE/sandbox.log" 2>&1; then
  tail -n 40 "$STATE/sandbox.log" >&2
  log "playbooks/sandbox.yml failed (full log: $STATE/sandbox.log)"
  exit 1
fi
SANDBOX_IP="$(cat "$STATE/address")"
SSH=(ssh -i "$STATE/id_ed25519" -o UserKnownHostsFile="$STATE/known_hosts" -o BatchMode=yes "root@$SANDBOX_IP")
log "sandbox $SANDBOX at $SANDBOX_IP, reached as: ${SSH[*]} ($(since "$T_SBX") s)"

# ------------------------------------------------------------ the test image server, in the sandbox's netns
# It listens on 127.0.0.1:8443 of the sandbox (not of this machine) and stops when this script ends.
stop_image_server
trap stop_image_server EXIT
PID="$(lxc-info -n "$SANDBOX" -p -H)"
nsenter --net="/proc/$PID/ns/net" python3 tests/testbed/image_server.py serve --daemon --cache "$IMAGES" \
  --state "$STATE/image-server.json" --tag "$SANDBOX" --https-port "$IMAGE_PORT" --http-port 0 >/dev/null

# ------------------------------------------------------------ site.yml
log "ansible-playbook -i inventory/example -i $STATE/inventory.yml -e @$STATE/images.yml playbooks/site.yml $*"
T_SITE=$(now)
set +e
ansible-playbook -i inventory/example -i "$STATE/inventory.yml" -e "@$STATE/images.yml" playbooks/site.yml "$@" 2>&1 | tee "$STATE/site.log"
RC=${PIPESTATUS[0]}
set -e
SITE_TIME="$(since "$T_SITE")"
stop_image_server
trap - EXIT
if ((RC != 0)); then
  log "site.yml failed (rc=$RC; log: $STATE/site.log)"
  exit "$RC"
fi
# changed= of every host in the recap, summed
CHANGED="$(sed -n '/^PLAY RECAP/,$p' "$STATE/site.log" | grep -o 'changed=[0-9]*' | cut -d= -f2 |
  awk '{ s += $1 } END { print s + 0 }')"
PREVIOUS="$(tail -n 1 "$STATE/runs" 2>/dev/null || true)"
printf '%s site.yml %s s, changed=%s\n' "$(date -u +%FT%TZ)" "$SITE_TIME" "$CHANGED" >>"$STATE/runs"

# ------------------------------------------------------------ the fleet
# Containers from the collection's inventory plugin (root's and those of every user in
# lxc_host_users), port forwards from the live nftables tables of the collection on the sandbox.
USERS="$(ansible-inventory -i inventory/example -i "$STATE/inventory.yml" --host "$LXC_HOST" |
  python3 -c 'import json, sys; print(json.dumps([u["name"] for u in json.load(sys.stdin).get("lxc_host_users", [])]))')"
cat >"$STATE/fleet.lxc.yml" <<END
plugin: lxcfleet.lxc.containers
hosts:
  - name: $LXC_HOST
    address: $SANDBOX_IP
    user: root
    private_key_file: $STATE/id_ed25519
    ssh_common_args: -o UserKnownHostsFile=$STATE/known_hosts
    users: $USERS
filters:
  - exclude: "lxc_name.startswith('lxcfleet-base-')"   # the fleet role's stopped base containers (copy-on-write sources)
END
ansible-inventory -i "$STATE/fleet.lxc.yml" --list >"$STATE/fleet.json"
"${SSH[@]}" nft -j list ruleset >"$STATE/ruleset.json"
python3 - "$STATE/fleet.json" "$STATE/ruleset.json" "$SANDBOX_IP" "$STATE/urls" >"$STATE/fleet.txt" <<'END'
import json
import sys

def plain(value):
    """ansible-inventory marks strings from the plugin as unsafe ({"__ansible_unsafe": "text"})."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


inventory = plain(json.load(open(sys.argv[1], encoding="utf-8")))
ruleset = json.load(open(sys.argv[2], encoding="utf-8"))["nftables"]
sandbox_ip, urls_file = sys.argv[3], sys.argv[4]

# DNAT rules of the collection's tables (lxcfleet: the host's forwards, lxcfleet_fleet: the fleet's).
forwards = set()
for item in ruleset:
    rule = item.get("rule")
    if not rule or not rule["table"].startswith("lxcfleet"):
        continue
    proto = port = dnat = None
    for expr in rule["expr"]:
        match = expr.get("match")
        if match and isinstance(match.get("left"), dict) and match["left"].get("payload", {}).get("field") == "dport":
            proto = match["left"]["payload"]["protocol"]
            port = match["right"]
            if isinstance(port, dict) and "range" in port:
                port = "-".join(str(p) for p in port["range"])
        if "dnat" in expr:
            dnat = expr["dnat"]
    if dnat and port is not None:
        forwards.add((str(port), proto, dnat["addr"], str(dnat.get("port", port))))

hostvars = inventory["_meta"]["hostvars"]
print(f"  {'container':<12} {'LXC host':<10} {'owner':<9} {'state':<8} {'address':<15} published on {sandbox_ip}")
urls = []
for name in sorted(hostvars):
    hv = hostvars[name]
    ips = hv.get("lxc_ipv4") or []
    ports = sorted(f for f in forwards if f[2] in ips)
    published = ", ".join(f"{p}/{proto} -> {addr}:{dport}" for p, proto, addr, dport in ports) or "-"
    print(f"  {hv['lxc_name']:<12} {hv['lxc_host']:<10} {hv['lxc_owner']:<9} {hv['lxc_state']:<8} "
          f"{','.join(ips) or '-':<15} {published}")
    urls += [f"http://{sandbox_ip}:{p}/" for p, proto, _, _ in ports if proto == "tcp" and "-" not in p]
with open(urls_file, "w", encoding="utf-8") as fh:
    fh.write("".join(f"{url}\n" for url in urls))
END
printf '\nThe fleet:\n'
cat "$STATE/fleet.txt"

# ------------------------------------------------------------ a published service, fetched from here
URL="$(head -n 1 "$STATE/urls")"
if [[ -z "$URL" ]]; then
  log "no published TCP port in the fleet"
  exit 1
fi
if command -v curl >/dev/null 2>&1; then
  FETCH=(curl -fsS --max-time 10 "$URL")
else
  FETCH=(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$URL")
fi
# A service that site.yml has just (re)started may need a few seconds before it listens.
PAGE=""
for _ in $(seq 1 20); do
  if PAGE="$("${FETCH[@]}" 2>/dev/null)"; then break; fi
  PAGE=""
  sleep 1
done
if [[ -z "$PAGE" ]]; then
  "${FETCH[@]}" >/dev/null || true
  log "${FETCH[*]} failed for 20 s: the published port does not answer"
  exit 1
fi
printf -v SHOWN '%q ' "${FETCH[@]}"
printf '\nA published service, reached from this machine (it answered just now):\n  %s\n' "$SHOWN"
printf '%s\n' "$PAGE" | grep -o '<h1>.*</h1>' | sed 's/^/  answered: /' || true
printf '\nsite.yml: %s s, changed=%s' "$SITE_TIME" "$CHANGED"
if [[ -n "$PREVIOUS" ]]; then
  printf '; previous run: %s' "$(cut -d' ' -f3- <<<"$PREVIOUS")"
fi
printf '\nmain.sh: %s s in all. Remove the sandbox: bash scripts/main.sh --teardown\n' "$(since "$T0")"
