#!/bin/bash
# Build the cached Debian rootfs that every sandbox host boots (overlay lower dir): bookworm, or SUITE (the
# containers rootfs starts from a trixie one: build-rootfs-containers.sh).
# Usage: build-rootfs.sh DEST_DIR [SUITE]  (the caller names DEST_DIR after this file's hash: recipe changes => rebuild)
# Only files inside DEST_DIR are written; this machine's /etc is never touched.
set -euo pipefail
DEST=$1; SUITE=${2:-bookworm}
MIRROR=${SAFEAPPLY_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
PKGS=systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,procps,sudo,acl,attr,nftables
R=$DEST.tmp
rm -rf "$R"
mkdir -p "$(dirname "$DEST")"
debootstrap --variant=minbase --include=$PKGS "$SUITE" "$R" "$MIRROR"

: > "$R/etc/machine-id"                    # empty: every boot gets its own id
rm -f "$R/var/lib/dbus/machine-id"
echo sandbox > "$R/etc/hostname"
: > "$R/etc/resolv.conf"                   # sandboxes have no DNS and no network
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
rm -f "$R"/etc/ssh/ssh_host_*              # written per sandbox by `safeapply sandbox up`
mkdir -p "$R/etc/ssh/sshd_config.d"
cat > "$R/etc/ssh/sshd_config.d/sandbox.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF
# deploy: passwordless sudo (the usual Ansible user); nosudo: no sudo at all (error-path tests)
chroot "$R" useradd -m -s /bin/bash deploy
chroot "$R" useradd -m -s /bin/bash nosudo
echo 'deploy ALL=(ALL) NOPASSWD: ALL' > "$R/etc/sudoers.d/deploy"
chmod 0440 "$R/etc/sudoers.d/deploy"
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
         e2scrub_reap.service systemd-pstore.service getty@tty1.service console-getty.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$R/etc/systemd/journald.conf.d/sandbox.conf"
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin
touch "$R/.safeapply-rootfs-ready"
rm -rf "$DEST"; mv "$R" "$DEST"
echo "rootfs built at $DEST"
