#!/bin/bash
# Build the cached rootfs of container sandboxes (`safeapply sandbox up --containers`): the base recipe run for
# Debian 13 trixie (podman 5 has the quadlet generator; bookworm's 4.3 has none) plus podman (crun, netavark,
# aardvark-dns, iptables), docker.io and local busybox images imported without any registry.
# Usage: build-rootfs-containers.sh BASE_RECIPE DEST_DIR (the caller names DEST_DIR after both recipes' hashes).
# Only files inside DEST_DIR are written; this machine's /etc is never touched.
set -euo pipefail
BASE_RECIPE=$1; DEST=$2
SUITE=trixie
MIRROR=${SAFEAPPLY_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
PKGS="podman crun conmon netavark aardvark-dns iptables busybox-static golang-github-containers-common
      docker.io docker-cli python3-requests"
R=$DEST.tmp
rm -rf "$R"
SAFEAPPLY_MIRROR=$MIRROR bash "$BASE_RECIPE" "$R" "$SUITE"
rm -f "$R/.safeapply-rootfs-ready"

# apt inside a private mount namespace: proc/dev for maintainer scripts, the build machine's resolver for the
# download only (the sandbox itself keeps an empty resolv.conf: no DNS, no network), no service started.
echo "deb $MIRROR $SUITE main" > "$R/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod 0755 "$R/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
unshare --mount --fork bash -euo pipefail -c '
  R=$1; shift
  mount --make-rprivate /
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C
  chroot "$R" apt-get update -qq
  chroot "$R" apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io "$@"
' _ "$R" $PKGS
rm -f "$R/usr/sbin/policy-rc.d"
# docker is there but off at boot (dockerd and containerd cost every boot): `systemctl start docker` when wanted
chroot "$R" systemctl disable -q docker.service docker.socket containerd.service
mkdir -p "$R/etc/docker"
printf '{"storage-driver": "vfs"}\n' > "$R/etc/docker/daemon.json"
: > "$R/etc/resolv.conf"

# Engine settings for a systemd-nspawn guest on an overlay rootfs: vfs storage (overlay on overlay is refused),
# no cgroups per container (the guest's cgroup v2 tree has no controllers: this machine's are bound to v1), and
# no pids limit (crun would need the pids controller: quadlet's units run `podman run --cgroups=split`), no
# session keyring (nspawn's seccomp filter refuses keyctl), netavark (not CNI) with iptables' nft backend. /proc/sys/net is writable in
# these guests (containers.py: nspawn's SYSTEMD_NSPAWN_API_VFS_WRITABLE=network; the netns is the guest's own).
mkdir -p "$R/etc/containers/containers.conf.d"
cat > "$R/etc/containers/storage.conf" <<'CONF'
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF
cat > "$R/etc/containers/containers.conf.d/sandbox.conf" <<'CONF'
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
[containers]
cgroups = "disabled"
keyring = false
pids_limit = 0
log_driver = "k8s-file"
CONF

# The local image: busybox-static and its applet symlinks, imported under real-looking names.
IMG=$(mktemp -d)
trap 'rm -rf "$IMG"' EXIT
mkdir -p "$IMG/bin" "$IMG/tmp" "$IMG/www" "$IMG/etc"
cp "$R/bin/busybox" "$IMG/bin/busybox"
for a in $("$IMG/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$IMG/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' > "$IMG/etc/passwd"; echo 'root:x:0:' > "$IMG/etc/group"
echo 'hello from the local busybox image' > "$IMG/www/index.html"
mkdir -p "$R/usr/local/share/safeapply"
tar -C "$IMG" -cf "$R/usr/local/share/safeapply/busybox-image.tar" .   # docker imports it when started
cat > "$R/usr/local/sbin/safeapply-load-images" <<'SCRIPT'
#!/bin/bash
# Import the sandbox's local images (busybox-static, no registry) into ENGINE: podman (done when the rootfs is
# built) or docker (`systemctl start docker && safeapply-load-images docker`).
set -euo pipefail
E=${1:-podman}; TAR=/usr/local/share/safeapply/busybox-image.tar
imp() {  # NAME CHANGE...
  local name=$1; shift; local ch=()
  # podman: STOPSIGNAL KILL, busybox as a container's PID 1 ignores SIGTERM (each stop would wait 10 s);
  # docker's import takes no STOPSIGNAL
  [ "$E" = podman ] && ch+=(--change "STOPSIGNAL SIGKILL")
  for c in "$@"; do ch+=(--change "$c"); done
  "$E" import "${ch[@]}" "$TAR" "$name" >/dev/null
}
imp localhost/busybox:latest 'CMD ["sh"]'
# a web server on 8080 (two builds: :2 differs from :1 only by an ENV, a different image ID)
imp docker.io/library/httpd-lite:1 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' "EXPOSE 8080"
imp docker.io/library/httpd-lite:2 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' "EXPOSE 8080" "ENV BUILD=2"
"$E" tag docker.io/library/httpd-lite:2 docker.io/library/httpd-lite:latest
# an agent whose port (9090) is only in the image: a playbook running it with the host's network does not say it
imp docker.io/prom/agent-lite:latest 'CMD ["httpd", "-f", "-p", "9090", "-h", "/www"]' "EXPOSE 9090"
"$E" images
SCRIPT
chmod 0755 "$R/usr/local/sbin/safeapply-load-images"
unshare --mount --fork bash -euo pipefail -c '
  R=$1
  mount --make-rprivate /
  mount --bind "$R" "$R"             # a mount point as the chroot root: image layers are applied in a chroot
  mount -t proc proc "$R/proc"
  mount -t sysfs sysfs "$R/sys"      # podman looks at /sys/fs/cgroup even to import
  mount --rbind /dev "$R/dev"
  mount -t tmpfs tmpfs "$R/run"
  chroot "$R" /usr/local/sbin/safeapply-load-images podman
' _ "$R"
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin
touch "$R/.safeapply-rootfs-ready"
rm -rf "$DEST"; mv "$R" "$DEST"
echo "containers rootfs built at $DEST"
