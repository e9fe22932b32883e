"""Ansible's errors and warnings made into safeapply's: one line each, vault failures as VaultError (exit 19)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from safeapply.errors import VaultError

VAULT_HINT = ("give the right password: --vault-password-file FILE, --vault-id ID@FILE, -J at a terminal, "
              "vault_password_file in ansible.cfg or ANSIBLE_VAULT_PASSWORD_FILE")

_tried: list[str] = []  # where the vault passwords came from (vault id @ file or prompt), for error messages


def note_vault_sources(sources: list[str]) -> None:
    _tried[:] = sources


def vault_passwords_given() -> bool:
    """Whether the current loader has any vault password (from the options, ansible.cfg or the environment)."""
    return bool(_tried)


@contextlib.contextmanager
def ansible_warnings() -> Iterator[Callable[[], list[str]]]:
    """Keep Ansible's warnings and deprecations off the terminal (they are many lines each). Yields a function
    that returns the innermost reason of each warning so far, one line each."""
    from ansible._internal._display_utils import DeferredWarningContext

    with DeferredWarningContext(variables={}) as ctx:
        yield lambda: [_reason(w.event) for w in ctx.get_warnings()]


def _reason(event: Any) -> str:
    """The first message down the cause chain that says more than 'Failed to parse inventory', with where."""
    chain = [event]
    while chain[-1].chain is not None:
        chain.append(chain[-1].chain.event)
    msg = next((e.msg for e in chain if not e.msg.startswith("Failed to parse")), chain[-1].msg)
    where = next((ln.removeprefix("Origin: ") for e in chain
                  for ln in (e.formatted_source_context or "").splitlines() if ln.startswith("Origin: ")), "")
    return first_line(Exception(msg)) + (f" ({where})" if where else "")


def why(e: Exception) -> str:
    """Ansible's messages run over several lines; the last one that names a cause is the useful one."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    errno = next((ln for ln in lines if "[Errno" in ln), None)
    return (errno.split("[Errno", 1)[1].split("]", 1)[1].strip() if errno else (lines or [type(e).__name__])[0])


@contextlib.contextmanager
def vault_errors() -> Iterator[None]:
    """A value or file that cannot be decrypted (no password, a wrong one) -> VaultError, one line, whatever
    Ansible wrapped it in (a templating error, a parser error)."""
    try:
        yield
    except VaultError:
        raise
    except Exception as e:
        cause = _vault_cause(e)
        if cause is None:
            raise
        tried = f" (vault passwords tried: {', '.join(_tried)})" if _tried else " (no vault password was given)"
        raise VaultError(f"vault: {first_line(cause).rstrip('.')}{tried}", VAULT_HINT) from e


def is_vault_error(e: BaseException) -> bool:
    return _vault_cause(e) is not None


def _as_base(e: BaseException) -> BaseException:
    return e


def _vault_cause(e: BaseException) -> BaseException | None:
    from ansible._internal._templating._jinja_common import UndecryptableVaultError  # private: pinned by a test
    from ansible.parsing.vault import AnsibleVaultError

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (AnsibleVaultError, UndecryptableVaultError)):
            return _as_base(cur)
        cur = cur.__cause__ or cur.__context__
    return None


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
