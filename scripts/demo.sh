#!/bin/bash
# The main job, end to end, against a disposable local sandbox host (root, Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
SA=${SAFEAPPLY:-.venv/bin/safeapply}
export SAFEAPPLY_SANDBOX_PREFIX=${SAFEAPPLY_SANDBOX_PREFIX:-demo}
WORK=$(mktemp -d /tmp/safeapply-demo.XXXXXX)
export SAFEAPPLY_STATE_DIR=${SAFEAPPLY_STATE_DIR:-$WORK/state}   # a fresh history for each demo
cleanup() { $SA sandbox down --all >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
expect() {  # expect CODE command...: run, show, and check the exit code
  local want=$1; shift; local rc=0
  "$@" || rc=$?
  [ "$rc" = "$want" ] || { echo "demo: expected exit $want from: $*, got $rc" >&2; exit 1; }
  echo "   -> exit $rc (as expected)"
}

step "boot a sandbox host (systemd + sshd in its own network namespace, podman and local images inside)"
$SA sandbox up --containers web1 > "$WORK/inventory.yml"
cat "$WORK/inventory.yml"

step "seed it: a monitoring agent as a systemd unit on :9090 (the incident's starting point)"
$SA sandbox ssh web1 "cat > /etc/systemd/system/node_exporter.service <<'UNIT'
[Unit]
Description=monitoring agent (stand-in)
[Service]
ExecStart=/usr/bin/python3 -m http.server 9090
WorkingDirectory=/tmp
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload && systemctl enable --now node_exporter.service"

step "preflight: SSH with a verified host key, python3, sudo"
expect 0 $SA ping -i "$WORK/inventory.yml"

step "(a) the incident: 'containerize' the agent while its unit still holds :9090 -> blocked before any change"
expect 17 $SA run playbooks/examples/seed-02-agent-container.yml -i "$WORK/inventory.yml" --yes \
  --model demo-model --note "demo (a): seed scenario"

step "(a2) the same incident the plan cannot see: a host-network container whose port is only in its image"
echo "   podman starts it, it cannot bind :9090 and exits -> verification names the holder -> rolled back"
expect 20 $SA run playbooks/demo/agent-container.yml -i "$WORK/inventory.yml" --yes --note "demo (a2)"
snap=$($SA show last --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"]["web1"]["id"])')
echo "after the rollback: containers, the unit, and what differs under the snapshot's roots:"
$SA sandbox ssh web1 "podman ps -a --format '{{.Names}} {{.Status}}'; systemctl is-active node_exporter.service"
$SA diff web1 "$snap" -i "$WORK/inventory.yml" | tee "$WORK/diff.txt"
grep -q "web1: 0 changes since" "$WORK/diff.txt" || { echo "demo: the host was not restored exactly" >&2; exit 1; }
[ -z "$($SA sandbox ssh web1 'podman ps -aq')" ] || { echo "demo: the container is still there" >&2; exit 1; }

step "(b) a playbook that edits, adds and deletes files under /etc, then starts a crash-looping unit -> rolled back"
expect 20 $SA run playbooks/demo/break-etc.yml -i "$WORK/inventory.yml" --yes --note "demo (b)"
snap=$($SA show last --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"]["web1"]["id"])')
echo "pre-run snapshot: $snap; what differs on the host now:"
$SA diff web1 "$snap" -i "$WORK/inventory.yml" | tee "$WORK/diff.txt"
grep -q "web1: 0 changes since" "$WORK/diff.txt" || { echo "demo: the host was not restored exactly" >&2; exit 1; }

step "(c) a good playbook (web service + user checks in good.verify.yml) -> applied and verified"
expect 0 $SA run playbooks/demo/good.yml -i "$WORK/inventory.yml" --yes --note "demo (c)"

step "the run history"
$SA history
$SA show last

step "done: every case behaved as described"
