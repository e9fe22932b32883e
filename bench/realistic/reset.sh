# Undo homelab.yml on a host (the bench's first-apply case starts from here): run as root over SSH.
systemctl disable --now homelab.service 2>/dev/null
rm -rf /etc/systemd/system/homelab.service /etc/homelab /opt/homelab /var/lib/homelab /etc/logrotate.d/homelab \
  /etc/tmpfiles.d/homelab.conf
systemctl daemon-reload
userdel homelab 2>/dev/null
groupdel homelab 2>/dev/null
true
