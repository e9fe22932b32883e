"""How safeapply reaches a host, and nothing else: `base.py` is the small contract (run argv, run python, a
Result); `sshconfig.py` asks OpenSSH (`ssh -G`) where and how a host is reached and builds an `SSHTarget`
(`sshtarget.py`); `sshconnect.py` opens the connection (ProxyJump channels, ProxyCommand, host keys checked by
`knownhosts.py`, keys and agent in `sshauth.py`); `ssh.py` runs commands over it; `local.py` is subprocess for
`ansible_connection=local`; `become.py` how root work becomes root (sudo/su, the password on stdin). paramiko
is imported only in this package; its errors become safeapply errors here."""
