"""How safeapply reaches a host, and nothing else: `base.py` is the small contract (run argv, run python, a
Result), `ssh.py` the SSH transport and `sshconfig.py` what OpenSSH's config says about a host (the only modules
that import paramiko), `local.py` subprocess for `ansible_connection=local`. Connection errors become safeapply
errors here."""
