"""Where a run read its Ansible project: its directory and the ansible.cfg Ansible found (absolute, with its
SHA-256; none when Ansible used its defaults), kept in the run record (`provenance`) so that `safeapply rollback
RUN` reads the project as the run did, whatever directory it is started from: another directory's ansible.cfg can
mean another remote_user, become settings, vault ids or ssh_args (`-F ssh_config` is relative to the directory).

`pinned` (before Ansible is imported) changes to the run's directory and pins ANSIBLE_CONFIG to the run's file;
`check_loaded` (after) refuses when the config Ansible loaded is not the run's. A file that is gone or changed
since the run, or a directory that is gone, is refused in one line (exit 2) unless `force`.

`asking` is the same pin for the commands that only ask a run's hosts about the run's own dead-man's switch
(`deadman RUN`, `show RUN` of a run whose controller died): they have no --force and are not refused — what is
there now is used, with a warning — because all they do is read or disarm the switch of that run id, which a host
the changed file leads to does not have, and refusing would leave an armed switch nobody can release.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from safeapply.errors import UsageError
from safeapply.records import RunRecord, file_sha256

FORCE_HINT = "put it back as it was, or re-run with --force to use what is there now"


def recorded() -> dict[str, Any]:
    """This process's directory and the ansible.cfg Ansible loaded (call after Ansible read its config)."""
    from safeapply.ansible_context import config_file

    cfg = config_file()
    return {"cwd": str(Path.cwd()), "ansible_config": cfg,
            "ansible_config_sha256": file_sha256(Path(cfg)) if cfg else None}


def _where(rec: RunRecord) -> dict[str, Any] | None:
    where = rec.sections.get("provenance") or {}
    return where if "ansible_config" in where else None  # a record from before this was kept: nothing to pin


def problems(rec: RunRecord) -> list[str]:
    """Why the run's directory or ansible.cfg cannot be read as the run read them."""
    where = _where(rec)
    if where is None:
        return []
    out = []
    cfg, cwd = where.get("ansible_config"), where.get("cwd")
    if cfg and not Path(cfg).is_file():
        out.append(f"{cfg}, the ansible.cfg run {rec.id} read, is gone")
    elif cfg and file_sha256(Path(cfg)) != where.get("ansible_config_sha256"):
        out.append(f"{cfg}, the ansible.cfg run {rec.id} read, changed since the run")
    if cwd and not Path(cwd).is_dir():
        out.append(f"{cwd}, the directory run {rec.id} ran in, is gone")
    return out


def refuse(rec: RunRecord, force: bool) -> None:
    found = problems(rec)
    if found and not force:
        raise UsageError(f"rollback of run {rec.id} refused: {found[0]}", FORCE_HINT)


@contextlib.contextmanager
def pinned(rec: RunRecord, force: bool) -> Iterator[None]:
    """In the run's directory with ANSIBLE_CONFIG set to the run's ansible.cfg (unset when the run read none),
    for as long as the block runs. Must be entered before Ansible reads its config (it reads it once)."""
    where = _where(rec)
    if where is None:
        yield
        return
    refuse(rec, force)
    old_cwd, old_env = Path.cwd(), {k: os.environ.get(k) for k in ("ANSIBLE_CONFIG", "SAFEAPPLY_STATE_DIR")}
    if old_env["SAFEAPPLY_STATE_DIR"]:  # the run history and snapshots stay where they are
        os.environ["SAFEAPPLY_STATE_DIR"] = str(Path(old_env["SAFEAPPLY_STATE_DIR"]).absolute())
    cfg, cwd = where.get("ansible_config"), where.get("cwd")
    if cfg and Path(cfg).is_file():
        os.environ["ANSIBLE_CONFIG"] = cfg
    else:
        os.environ.pop("ANSIBLE_CONFIG", None)
    try:
        if cwd and Path(cwd).is_dir():
            os.chdir(cwd)
        yield
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def asking(rec: RunRecord, warn: Callable[[str], None]) -> Iterator[None]:
    """`pinned` for `deadman RUN` and `show RUN`: a gone or changed file or directory is warned about, not
    refused (see the module's doc)."""
    for found in problems(rec):
        warn(f"{found}: reading what is there now")
    with pinned(rec, force=True):
        yield


def check_loaded(rec: RunRecord, force: bool) -> None:
    """Refuse unless the ansible.cfg Ansible loaded in this process is the one the run read."""
    from safeapply.ansible_context import config_file

    where = _where(rec)
    refuse(rec, force)
    if where is None or force:
        return
    want, have = where.get("ansible_config"), config_file()
    if want != have:
        raise UsageError(f"rollback of run {rec.id} refused: Ansible reads {have or 'no ansible.cfg'} here, the run "
                         f"read {want or 'none'}", f"run `safeapply rollback` in {where.get('cwd')}, or re-run "
                         "with --force")
