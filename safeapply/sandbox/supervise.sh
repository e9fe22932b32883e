#!/bin/bash
# Supervisor of one sandbox: moves itself into the sandbox's own cgroups, runs systemd-nspawn, and restarts it
# when the guest reboots (nspawn exits 133), like systemd-nspawn@.service's RestartForceExitStatus=133.
# Usage: supervise.sh HOSTDIR MACHINE NETNS "CGROUP_DIRS..."   (`sandbox down` touches HOSTDIR/stop first)
H=$1; MACHINE=$2; NS=$3; CGS=$4
trap 'kill -TERM $child 2>/dev/null' TERM INT
while :; do
  ( for d in $CGS; do mkdir -p "$d" && echo $BASHPID > "$d/cgroup.procs"; done
    # CAP_NET_ADMIN: firewall tests (nft) inside; the netns is the sandbox's own, loopback only
    exec systemd-nspawn --quiet --register=no --keep-unit --machine="$MACHINE" --directory="$H/merged" \
         --capability=CAP_NET_ADMIN \
         --network-namespace-path="/run/netns/$NS" --boot --console=read-only \
         --resolv-conf=off --timezone=off --link-journal=no ) &
  child=$!; echo $child > "$H/nspawn.pid"
  while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done
  echo "nspawn exited rc=$rc" >&2
  [ "$rc" = 133 ] && [ ! -e "$H/stop" ] || exit $rc
done
