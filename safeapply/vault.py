"""Vault secrets and typed passwords, set up as ansible-playbook sets them up: Ansible's own CLI code reads
--vault-id, --vault-password-file, ansible.cfg's vault_password_file / vault_identity_list and
ANSIBLE_VAULT_PASSWORD_FILE (files, or scripts that print the password) into a DataLoader; -J and -K ask at a
terminal only. Any failure is one line: VaultError (exit 19) or UsageError (exit 2)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeapply.ansible_errors import VAULT_HINT, ansible_warnings, first_line, note_vault_sources
from safeapply.errors import UsageError, VaultError


@dataclass(frozen=True)
class Prompted:
    """Passwords typed at a prompt (-J, -K). Never printed: repr shows only which ones are set."""

    vault: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (vault id, password)
    become: str | None = field(default=None, repr=False)



def prompt(ask_vault_pass: bool, ask_become_pass: bool, become_password_file: str | None,
           ask: Callable[[str], str] | None = None) -> Prompted:
    """-J and -K asked at the terminal (refused without one), --become-password-file read (file or script)."""
    import getpass

    wanted = [("-J/--ask-vault-pass", "Vault password: ") if ask_vault_pass else None,
              ("-K/--ask-become-pass", "BECOME password: ") if ask_become_pass else None]
    asks = [w for w in wanted if w is not None]
    if asks and ask is None and not sys.stdin.isatty():
        raise UsageError(f"{asks[0][0]} needs a terminal to ask on, and stdin is not one",
                         "give the password in a file instead: --vault-password-file FILE or --vault-id "
                         "ID@FILE (a script works too), --become-password-file FILE")
    read = ask or getpass.getpass
    vault = ((_default_id(), _nonempty(read("Vault password: "), "vault")),) if ask_vault_pass else ()
    become = _nonempty(read("BECOME password: "), "become") if ask_become_pass else None
    if become is None and become_password_file:
        become = _password_file(become_password_file)
    return Prompted(vault, become)


def _password_file(path: str) -> str:
    """--become-password-file: a file, or a script that prints the password (Ansible's own reader)."""
    from ansible.cli import CLI
    from ansible.errors import AnsibleError

    try:
        return str(CLI.get_password_from_file(str(Path(path).expanduser())))
    except AnsibleError as e:
        raise UsageError(f"--become-password-file: {first_line(e)}", "give a readable file, or a script that "
                         "prints the password") from e


def _default_id() -> str:
    from ansible import constants as C

    return str(C.DEFAULT_VAULT_IDENTITY)


def _nonempty(secret: str, what: str) -> str:
    if not secret:
        raise UsageError(f"an empty {what} password was typed", "type the password, or give it in a file")
    return secret


def loader(vault_ids_given: Sequence[str], vault_password_files: Sequence[str], prompted: Prompted) -> Any:
    """A DataLoader with the vault secrets ansible-playbook would have (its own `_play_prereqs` code path)."""
    from ansible import constants as C
    from ansible.cli import CLI
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecret

    data_loader = DataLoader()
    vault_ids = list(C.DEFAULT_VAULT_IDENTITY_LIST) + list(vault_ids_given)
    for vid in vault_ids:
        if vid.rpartition("@")[2] in ("prompt", "prompt_ask_vault_pass"):
            raise UsageError(f"--vault-id {vid} asks at a prompt", "use -J/--ask-vault-pass at a terminal, or "
                             "give the password in a file: --vault-id ID@FILE")
    try:
        with _quiet_display():
            secrets = CLI.setup_vault_secrets(data_loader, vault_ids=vault_ids,
                                              vault_password_files=list(vault_password_files),
                                              ask_vault_pass=False, auto_prompt=False, initialize_context=False)
    except AnsibleError as e:
        raise VaultError(f"vault: {first_line(e)}", VAULT_HINT) from e
    secrets = [(vid, VaultSecret(pw.encode())) for vid, pw in prompted.vault] + list(secrets)
    note_vault_sources([f"{vid}@{getattr(s, 'filename', None) or 'prompt'}" for vid, s in secrets])
    data_loader.set_vault_secrets(secrets)
    _set_vault_context(secrets)
    return data_loader


def _set_vault_context(secrets: list[tuple[str, Any]]) -> None:
    """Vault-encrypted values (`!vault` strings) decrypt through Ansible's process-wide VaultSecretsContext.
    Ansible initialises it once per process; one process here may run several invocations (tests), so the
    current one is replaced (a private attribute: pinned by tests/test_ansible_context.py)."""
    from ansible.parsing.vault import VaultSecretsContext

    VaultSecretsContext._current = VaultSecretsContext(secrets)


@contextlib.contextmanager
def _quiet_display() -> Iterator[None]:
    """setup_vault_secrets warns about each unusable password file before it raises: the error says it once."""
    with ansible_warnings():
        yield
