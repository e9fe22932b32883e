"""Everything safeapply runs on a managed host, and nothing else. Its room:

* Standard library only, minimum Python 3.8 (Ansible 2.19's own target floor): `vermin` and the package's
  tests under a real 3.8 interpreter hold it there (tests/test_target_python.py, tests/target/); ruff.toml
  here lints it as 3.8 code (typing.Dict/Optional, no builtin generics at run time). Nothing here imports the
  rest of safeapply; the controller imports from here (paths from `layout`, `bootstrap.MIN_PYTHON`), never
  the reverse.
* Programs: `probe` (the scan), `snapshot` (scan, send, read, restore; a host restores itself with
  BASE/bin/safeapply-restore.py), `deadman` (the dead-man's switch: arm, extend, fire, disarm, status),
  `lock` (the per-host run lock), `checks` (verify's user checks), `tasks` (stop what a run left running).
  `entries` names them (`lock.acquire`, `snapshot.scan`, ...); `layout` names every on-host path;
  `versions` drops installed versions nothing needs any more.
* Shipping: the controller zips this package (`safeapply.remote.bundle`, one zip per content hash) and
  installs it once per version on each host as /var/lib/safeapply/target/<version>.pyz: the only code ever
  sent as source is `bootstrap` (`python3 -c`), which runs an entry of the installed zip or says it is
  missing; the controller then sends the zip once (checked, written beside, renamed) and calls again.
* Errors: one stderr line `SAFEAPPLY-ERROR <kind> <message>`, exit 3 (`errors`); the controller maps the
  kind to its error class in one place (`safeapply.remote`).
"""
