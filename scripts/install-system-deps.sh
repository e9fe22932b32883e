#!/bin/bash
# Debian packages the sandboxes and tests need. Only what is missing is installed, never with recommends
# (a recommended package, libnss-mymachines, would edit this machine's /etc/nsswitch.conf).
set -euo pipefail
PKGS="systemd-container debootstrap netcat-openbsd openssh-client iproute2 acl attr"
need=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "install as root:$need" >&2; exit 1; fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
echo "installed:$need"
