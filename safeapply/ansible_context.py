"""One Ansible context per invocation, set up the way ansible-playbook sets up its own.

Config comes from `ansible.constants` (ANSIBLE_CONFIG, ./ansible.cfg in the *current* directory, ~/.ansible.cfg,
/etc/ansible/ansible.cfg — Ansible's own search). Vault secrets are loaded by Ansible's CLI code
(`CLI.setup_vault_secrets`: --vault-id, --vault-password-file, files and scripts, ansible.cfg's
vault_password_file / vault_identity_list, ANSIBLE_VAULT_PASSWORD_FILE) into one DataLoader. The inventory is
parsed once; every stage (resolve, intent, scan, plan, snapshot, verify, rollback, the switch) asks `get()` for it.
Child processes (ansible-lint, ansible-runner) get `child_env()`: the same cwd and ANSIBLE_CONFIG pinned to the
file found here, so roles_path, remote_user, forks, timeout... mean the same to them.

Secrets (prompted passwords) live only in memory here; children get them through a 0600 file in a private
directory that the caller deletes, never through argv or the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from safeapply import vault
from safeapply.ansible_errors import (
    ansible_warnings,
    first_line,
    is_vault_error,
    vault_errors,
    why,
)
from safeapply.errors import UsageError
from safeapply.vault import Prompted

# An inventory that does not parse is an error, not a warning followed by "no hosts matched".
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
os.environ.setdefault("ANSIBLE_HOST_PATTERN_MISMATCH", "ignore")  # we say it ourselves, in one line


@dataclass(frozen=True)
class AnsibleArgs:
    """ansible-playbook's own options, as given on safeapply's command line (None/empty: not given)."""

    inventory: tuple[str, ...] = ()
    extra_vars: tuple[str, ...] = ()
    vault_ids: tuple[str, ...] = ()
    vault_password_files: tuple[str, ...] = ()
    ask_vault_pass: bool = False
    remote_user: str | None = None
    private_key_file: str | None = None
    become: bool = False
    become_user: str | None = None
    become_method: str | None = None
    ask_become_pass: bool = False
    become_password_file: str | None = None
    forks: int | None = None
    ssh_common_args: str | None = None
    ssh_extra_args: str | None = None
    timeout: int | None = None
    playbook: str | None = None  # the command's playbook: group_vars/host_vars beside it count, as in Ansible

    def playbook_args(self) -> list[str]:
        """The connection, become and fork options for ansible-playbook (paths only: never a secret).
        Vault ids and prompted passwords are added by `AnsibleContext.secret_args`."""
        out: list[str] = []
        for flag, value in (("--user", self.remote_user), ("--private-key", _abs(self.private_key_file)),
                            ("--become-user", self.become_user), ("--become-method", self.become_method),
                            ("--become-password-file", _abs(self.become_password_file)),
                            ("--forks", self.forks), ("--ssh-common-args", self.ssh_common_args),
                            ("--ssh-extra-args", self.ssh_extra_args), ("--timeout", self.timeout)):
            if value is not None:
                out += [flag, str(value)]
        return out + (["--become"] if self.become else [])


def absolute_args(args: AnsibleArgs) -> AnsibleArgs:
    """The same options with their files as absolute paths (for a command that then changes directory)."""
    def extra(opt: str) -> str:
        return f"@{_abs(opt[1:])}" if opt.startswith("@") else opt

    return replace(args, inventory=tuple(absolute_source(s) for s in args.inventory),
                   extra_vars=tuple(map(extra, args.extra_vars)), vault_ids=tuple(map(_vault_id_abs, args.vault_ids)),
                   vault_password_files=tuple(str(_abs(f)) for f in args.vault_password_files),
                   private_key_file=_abs(args.private_key_file), become_password_file=_abs(args.become_password_file),
                   playbook=_abs(args.playbook))


def absolute_source(source: str) -> str:
    """An inventory source as a run record keeps it: a path made absolute (`safeapply rollback RUN` may run from
    another directory, whose `inventory` could name other machines); a host list stays as it is."""
    return source if "," in source or not Path(source).exists() else str(Path(source).resolve())


def _abs(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


class AnsibleContext:
    """DataLoader with the vault secrets, InventoryManager and VariableManager: built once, shared."""

    def __init__(self, args: AnsibleArgs, loader: Any, prompted: Prompted) -> None:
        self.args, self.loader, self.prompted = args, loader, prompted
        self._inventory: Any = None
        self._vm: Any = None
        self._extra: dict[str, Any] | None = None

    @property
    def config_file(self) -> str | None:
        return config_file()

    @property
    def forks(self) -> int:
        from ansible import constants as C

        return int(self.args.forks or C.DEFAULT_FORKS or 5)

    @property
    def sources(self) -> list[str]:
        from ansible import constants as C

        if self.args.inventory:
            return list(self.args.inventory)
        return [str(p) for p in C.DEFAULT_HOST_LIST if Path(p).exists()]

    @property
    def inventory(self) -> Any:
        if self._inventory is None:
            self._inventory = _inventory_manager(self.loader, self.sources)
        return self._inventory

    @property
    def extra_vars(self) -> dict[str, Any]:
        """-e, read as ansible-playbook reads it (vaulted @files decrypted with this context's secrets)."""
        if self._extra is None:
            self._extra = parse_extra_vars(self.loader, self.args.extra_vars)
        return self._extra

    @property
    def variable_manager(self) -> Any:
        """The shared VariableManager (inventory, group_vars/host_vars, -e): what `resolve` reads."""
        if self._vm is None:
            self._vm = self.new_variable_manager()
        return self._vm

    def new_variable_manager(self) -> Any:
        """A VariableManager over the shared loader and inventory for one walk through a playbook (a walk sets
        facts as it goes: the next walk starts without them, as a new ansible-playbook would)."""
        from ansible.vars.manager import VariableManager

        vm = VariableManager(loader=self.loader, inventory=self.inventory)
        vm._extra_vars = self.extra_vars  # what ansible-playbook's load_extra_vars() puts there
        return vm

    def derive(self, inventory: Sequence[str] | None, extra_vars: Sequence[str] | None) -> AnsibleContext:
        """The same secrets and options over another inventory or other -e (a recorded run's inventory)."""
        args = replace(self.args, inventory=tuple(self.args.inventory if inventory is None else inventory),
                       extra_vars=tuple(self.args.extra_vars if extra_vars is None else extra_vars))
        if args == self.args:
            return self
        return AnsibleContext(args, self.loader, self.prompted)

    # ---- child processes (ansible-lint, ansible-runner) ------------------------------------------------
    def child_env(self) -> dict[str, str]:
        return config_env()

    def secret_args(self, private_dir: Path) -> list[str]:
        """--vault-id/--vault-password-file/--become-password-file for ansible-playbook: the user's own files and
        scripts by path; a password typed at a prompt written to a 0600 file in `private_dir` (the caller
        deletes it). ansible.cfg's and the environment's vault settings reach the child by ANSIBLE_CONFIG."""
        out = [a for v in self.args.vault_ids for a in ("--vault-id", _vault_id_abs(v))]
        out += [a for f in self.args.vault_password_files for a in ("--vault-password-file", str(_abs(f)))]
        for n, (vid, password) in enumerate(self.prompted.vault):
            out += ["--vault-id", f"{vid}@{_private_file(private_dir, f'vault-{n}', password)}"]
        if self.prompted.become is not None and self.args.ask_become_pass:  # a --become-password-file goes by path
            out += ["--become-password-file", str(_private_file(private_dir, "become", self.prompted.become))]
        return out

    # ---- hosts -------------------------------------------------------------------------------------------
    def host_vars(self, host: Any) -> dict[str, Any]:
        """Every variable Ansible's VariableManager gives the host (inventory, group_vars, -e), untemplated."""
        with vault_errors():
            return dict(self.variable_manager.get_vars(host=host, include_hostvars=False))


def config_file() -> str | None:
    """The ansible.cfg Ansible found (absolute), or None when it uses its defaults."""
    from ansible import constants as C

    return str(Path(C.CONFIG_FILE).absolute()) if C.CONFIG_FILE else None


def config_env() -> dict[str, str]:
    """Environment for an Ansible child started in the current directory: ANSIBLE_CONFIG pinned to the config
    this process reads (the child then finds the same one whatever its cwd)."""
    cfg = config_file()
    return {"ANSIBLE_CONFIG": cfg} if cfg else {}


def _vault_id_abs(vault_id: str) -> str:
    label, sep, source = vault_id.rpartition("@")
    if source in ("prompt", "prompt_ask_vault_pass") or not Path(source).expanduser().exists():
        return vault_id
    return f"{label}{sep}{_abs(source)}"


def _private_file(directory: Path, name: str, secret: str) -> Path:
    path = directory / f".{name}-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return path


# ---- building it ----------------------------------------------------------------------------------------

_current: AnsibleContext | None = None
_pending: AnsibleArgs | None = None  # activated lazily: built by the first get()


def vault_options() -> list[str]:
    """The vault options of this invocation (file paths, never a password) and the environment's, for a cache
    key: a result that depends on what the vault files decrypt to is not reused under other passwords."""
    args = _current.args if _current is not None else _pending or AnsibleArgs()
    env = [f"{k}={os.environ[k]}" for k in ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST")
           if k in os.environ]
    return [*map(_vault_id_abs, args.vault_ids), *(str(_abs(f)) for f in args.vault_password_files),
            *(["-J"] if args.ask_vault_pass else []), *env]


def vault_env(private_dir: Path) -> dict[str, str]:
    """ANSIBLE_VAULT_IDENTITY_LIST for an Ansible child that takes no vault flags (ansible-lint's syntax check):
    ansible.cfg's and the environment's list, then this invocation's --vault-id/--vault-password-file (by path)
    and passwords typed at a prompt (0600 files in `private_dir`, which the caller deletes). {} when this
    invocation gave none (the child reads ansible.cfg and the environment itself)."""
    args = _current.args if _current is not None else _pending or AnsibleArgs()
    given = [*map(_vault_id_abs, args.vault_ids), *(str(_abs(f)) for f in args.vault_password_files)]
    ids = [v for v in given if v.rpartition("@")[2] not in ("prompt", "prompt_ask_vault_pass")]
    if args.ask_vault_pass or len(ids) < len(given):
        typed = enumerate(get().prompted.vault)
        ids += [f"{vid}@{_private_file(private_dir, f'vault-{n}', pw)}" for n, (vid, pw) in typed]
    if not ids:
        return {}
    from ansible import constants as C

    return {"ANSIBLE_VAULT_IDENTITY_LIST": ",".join([*(C.DEFAULT_VAULT_IDENTITY_LIST or []), *ids])}


def vault_secrets() -> list[tuple[str, bytes]]:
    """This invocation's vault secrets as Ansible loaded them: (vault id, password bytes). Loads them (imports
    Ansible) when the command was activated lazily. Secrets: never log, store or print them."""
    if _current is None and _pending is not None:
        activate(_pending)
    if _current is None:
        return []
    from ansible.parsing.vault import VaultSecretsContext

    found = VaultSecretsContext.current(optional=True)
    return [(str(vid), bytes(s.bytes)) for vid, s in (found.secrets if found else [])]


def activate(args: AnsibleArgs, ask: Callable[[str], str] | None = None, lazy: bool = False) -> AnsibleContext | None:
    """Build this invocation's context: prompts (-J, -K: a TTY only), vault secrets loaded. Errors are one line.
    `lazy` (no prompt asked for): built by the first `get()`, so a command that may not need Ansible at all (a
    lint cache hit) does not import it."""
    global _current, _pending
    if lazy and not (args.ask_vault_pass or args.ask_become_pass):
        _pending, _current = args, None
        return None
    prompted = vault.prompt(args.ask_vault_pass, args.ask_become_pass, args.become_password_file, ask)
    loader = vault.loader(args.vault_ids, args.vault_password_files, prompted)
    if args.playbook:  # as the playbook executor does: vars plugins read group_vars/host_vars beside it too
        loader.set_basedir(str(Path(args.playbook).absolute().parent))
    _current = AnsibleContext(args, loader, prompted)
    return _current


def deactivate() -> None:
    global _current, _pending
    _current = _pending = None
    _derived.clear()


def get(inventory: Sequence[str] | None = None, extra_vars: Sequence[str] | None = None) -> AnsibleContext:
    """This invocation's context (for another inventory or -e: the same secrets and options over those, also
    built once). Outside an activated command (a library call) a new context each time, with Ansible's
    defaults: nothing is cached between calls whose files may have changed."""
    if _current is None and _pending is not None:
        activate(_pending)
    if _current is None:
        return AnsibleContext(AnsibleArgs(), vault.loader((), (), Prompted()), Prompted()).derive(inventory,
                                                                                                extra_vars)
    ctx = _current.derive(inventory, extra_vars)
    return _derived.setdefault((ctx.args.inventory, ctx.args.extra_vars), ctx)


_derived: dict[tuple[tuple[str, ...], tuple[str, ...]], AnsibleContext] = {}


def forks() -> int:
    """-f, else ansible.cfg's forks (else Ansible's 5): how many hosts are worked on at once."""
    if _current is not None:
        return _current.forks
    from ansible import constants as C

    return int(C.DEFAULT_FORKS or 5)


def _inventory_manager(loader: Any, sources: list[str]) -> Any:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager

    check_sources(sources)
    with ansible_warnings() as warned, vault_errors():
        try:
            return InventoryManager(loader=loader, sources=sources)
        except AnsibleError as e:
            if is_vault_error(e):
                raise
            why = (warned() or [first_line(e)])[0]
            raise UsageError(f"cannot parse inventory {', '.join(sources)}: {why}",
                             "fix it, or check it with `ansible-inventory -i SOURCE --list`") from e


def check_sources(sources: Sequence[str]) -> None:
    for src in sources:
        if "," not in src and not Path(src).exists():
            raise UsageError(f"inventory {src} does not exist", "pass an existing file or directory to -i")


def parse_extra_vars(loader: Any, extra_vars: Sequence[str]) -> dict[str, Any]:
    """`-e` values the way ansible-playbook reads them: @file, YAML/JSON, or key=value."""
    from ansible.errors import AnsibleError
    from ansible.utils.vars import combine_vars

    out: dict[str, Any] = {}
    for opt in extra_vars:
        try:
            with vault_errors():
                data = _extra_vars_one(loader, opt)
        except AnsibleError as e:
            raise UsageError(f"cannot read extra vars {opt!r}: {why(e)}",
                             "use key=value, a YAML/JSON mapping or @an-existing-file") from e
        if not isinstance(data, dict):
            raise UsageError(f"extra vars {opt!r} are not a mapping", "use key=value, a YAML mapping or @file")
        out = combine_vars(out, data)
    return out


def _extra_vars_one(loader: Any, opt: str) -> Any:
    from ansible.parsing.splitter import parse_kv

    if opt.startswith("@"):  # relative to the current directory, as ansible-playbook reads it at start
        return loader.load_from_file(str(Path(opt[1:]).expanduser().absolute()))
    if opt[:1] in ("{", "["):
        return loader.load(opt)
    return parse_kv(opt)
