"""ansible-playbook's own options, declared once for every command that reads the inventory or connects to
hosts (`@ansible_options`): -e, vault, connection, become and fork options, with Ansible's names and short forms.
The decorator adds them to the command's signature, builds this invocation's Ansible context from them before
the command runs (`safeapply.ansible_context.activate`: prompts and vault secrets first), and drops it after."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any, TypeVar, overload

import typer

from safeapply.ansible_context import AnsibleArgs, absolute_args, activate, deactivate

PANEL = "Ansible options (as for ansible-playbook)"

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS: tuple[tuple[str, Any], ...] = (
    ("extra_vars", Annotated[list[str] | None, typer.Option(
        "--extra-vars", "-e", rich_help_panel=PANEL,
        help="Extra variables: key=value, YAML/JSON or @file (a vaulted file too). Repeatable; beat all others.")]),
    ("vault_id", Annotated[list[str] | None, typer.Option(
        "--vault-id", rich_help_panel=PANEL, metavar="[ID@]FILE",
        help="A vault identity: ID@FILE, the file holding its password or a script printing it. Repeatable.")]),
    ("vault_password_file", Annotated[list[str] | None, typer.Option(
        "--vault-password-file", "--vault-pass-file", rich_help_panel=PANEL, metavar="FILE",
        help="The vault password in a file, or a script that prints it. Repeatable. ansible.cfg's "
        "vault_password_file / vault_identity_list and ANSIBLE_VAULT_PASSWORD_FILE are read too.")]),
    ("ask_vault_pass", Annotated[bool, typer.Option(
        "--ask-vault-pass", "--ask-vault-password", "-J", rich_help_panel=PANEL,
        help="Ask for the vault password (at a terminal only; without one: an error).")]),
    ("user", Annotated[str | None, typer.Option(
        "--user", "-u", rich_help_panel=PANEL, metavar="REMOTE_USER",
        help="Log in as this user where the inventory sets no ansible_user (ansible.cfg remote_user below it).")]),
    ("private_key", Annotated[str | None, typer.Option(
        "--private-key", "--key-file", rich_help_panel=PANEL, metavar="FILE",
        help="SSH private key file where the inventory sets no ansible_ssh_private_key_file.")]),
    ("become", Annotated[bool, typer.Option(
        "--become", "-b", rich_help_panel=PANEL,
        help="Run the play's tasks with become (where the inventory sets no ansible_become).")]),
    ("become_user", Annotated[str | None, typer.Option(
        "--become-user", rich_help_panel=PANEL, help="Become this user (default root).")]),
    ("become_method", Annotated[str | None, typer.Option(
        "--become-method", rich_help_panel=PANEL, help="sudo, su, ... (default: ansible.cfg's, else sudo).")]),
    ("ask_become_pass", Annotated[bool, typer.Option(
        "--ask-become-pass", "-K", rich_help_panel=PANEL,
        help="Ask for the become password (at a terminal only) where no ansible_become_password is set.")]),
    ("become_password_file", Annotated[str | None, typer.Option(
        "--become-password-file", "--become-pass-file", rich_help_panel=PANEL, metavar="FILE",
        help="The become password in a file, or a script that prints it.")]),
    ("forks", Annotated[int | None, typer.Option(
        "--forks", "-f", min=1, rich_help_panel=PANEL,
        help="Hosts worked on at once by ansible-playbook, ping, scan and snapshot (default: ansible.cfg's forks, "
        "else 5).")]),
    ("ssh_common_args", Annotated[str | None, typer.Option(
        "--ssh-common-args", rich_help_panel=PANEL, help="Options for ssh (e.g. '-o ProxyJump=bastion').")]),
    ("ssh_extra_args", Annotated[str | None, typer.Option(
        "--ssh-extra-args", rich_help_panel=PANEL, help="More options, for ssh only.")]),
    ("timeout", Annotated[int | None, typer.Option(
        "--timeout", "-T", min=1, rich_help_panel=PANEL,
        help="Connection timeout in seconds (default: ansible.cfg's timeout, else 10).")]),
)

VAULT_OPTIONS = ("vault_id", "vault_password_file", "ask_vault_pass")

Before = Callable[[dict[str, Any]], AbstractContextManager[object]]


@overload
def ansible_options(fn: F) -> F: ...


@overload
def ansible_options(*, before: Before | None = None, only: tuple[str, ...] = ()) -> Callable[[F], F]: ...


def ansible_options(fn: F | None = None, *, before: Before | None = None,
                    only: tuple[str, ...] = ()) -> F | Callable[[F], F]:
    """Add OPTIONS to a command (the ones it does not declare itself, e.g. its own -e) and activate the Ansible
    context from them for the command's run. `before(kwargs)`: a context the command runs in, entered before
    Ansible reads its config (`rollback RUN` moves to the run's directory and ansible.cfg); the options' files
    are then taken as absolute paths, from where the command was started. `only`: these options alone (`lint`
    takes the vault ones)."""
    if fn is None:
        return functools.partial(ansible_options, before=before, only=only)
    sig = inspect.signature(fn, eval_str=True)  # the command module's own names, resolved there
    own = set(sig.parameters)
    added = [(n, a) for n, a in OPTIONS if n not in own and (not only or n in only)]

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        values = {n: kwargs.pop(n) for n, _a in added}
        args = _args({**kwargs, **values})
        args = absolute_args(args) if before else args  # here, before `before` changes directory
        with before(kwargs) if before else contextlib.nullcontext():
            activate(args, lazy=bool(only))  # a command with some options only (lint) may not need Ansible
            try:
                return fn(**kwargs)
            finally:
                deactivate()

    defaults = {"ask_vault_pass": False, "become": False, "ask_become_pass": False}
    params = list(sig.parameters.values()) + [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(n), annotation=a)
        for n, a in added]
    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {**fn.__annotations__, **dict(added)}
    return command  # type: ignore[return-value]


def _args(given: dict[str, Any]) -> AnsibleArgs:
    v = {n: None for n, _a in OPTIONS} | given  # a command with `only` some of them: the others not given
    return AnsibleArgs(
        inventory=tuple(v.get("inventory") or ()), extra_vars=tuple(v.get("extra_vars") or ()),
        vault_ids=tuple(v["vault_id"] or ()), vault_password_files=tuple(v["vault_password_file"] or ()),
        ask_vault_pass=bool(v["ask_vault_pass"]), remote_user=v["user"], private_key_file=v["private_key"],
        become=bool(v["become"]), become_user=v["become_user"], become_method=v["become_method"],
        ask_become_pass=bool(v["ask_become_pass"]), become_password_file=v["become_password_file"],
        forks=v["forks"], ssh_common_args=v["ssh_common_args"], ssh_extra_args=v["ssh_extra_args"],
        timeout=v["timeout"], playbook=str(v["playbook"]) if v.get("playbook") else None)
