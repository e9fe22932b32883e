"""A host's connection and become variables as Ansible would use them: its own (inventory, group_vars, -e,
templated with the vault secrets), then for what it does not set the command line's -u, --private-key,
--ssh-common-args, --ssh-extra-args, -T, -b, --become-user, --become-method, -K/--become-password-file, then
the environment and ansible.cfg (remote_user, private_key_file, timeout, remote_port, become...). The order is
Ansible's own: each value comes from `C.config.get_config_value_and_origin` for the ssh connection and the
become plugin (variables > keywords/command line > environment > ansible.cfg), never from a copy of it.

The result is written under the names safeapply's transport and become code read (`ansible_user`,
`ansible_ssh_private_key_file`, `ansible_become_password`, ...). It holds secrets: never log it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safeapply.ansible_errors import vault_errors

if TYPE_CHECKING:
    from safeapply.ansible_context import AnsibleContext

CONNECTION_VARS = (
    "ansible_connection", "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port", "ansible_user",
    "ansible_ssh_user", "ansible_ssh_private_key_file", "ansible_private_key_file", "ansible_ssh_common_args",
    "ansible_ssh_extra_args", "ansible_ssh_timeout", "ansible_password", "ansible_ssh_pass",
    "ansible_ssh_password", "ansible_ssh_args", "ansible_python_interpreter",
    "ansible_become", "ansible_become_method", "ansible_become_user", "ansible_sudo_user",
    "ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_become_exe",
    "ansible_sudo_exe", "ansible_become_flags", "ansible_sudo_flags",
    "ansible_su_user", "ansible_su_pass", "ansible_su_exe", "ansible_su_flags",  # the su become plugin's
)

# (plugin option, the variable it is written to): the ssh connection plugin's options
SSH_OPTIONS = (("remote_user", "ansible_user"), ("port", "ansible_port"), ("ssh_args", "ansible_ssh_args"),
               ("private_key_file", "ansible_ssh_private_key_file"), ("ssh_common_args", "ansible_ssh_common_args"),
               ("ssh_extra_args", "ansible_ssh_extra_args"), ("timeout", "ansible_ssh_timeout"))
BECOME_OPTIONS = (("become_user", "ansible_become_user"), ("become_exe", "ansible_become_exe"),
                  ("become_flags", "ansible_become_flags"), ("become_pass", "ansible_become_password"))


def connection_vars(ctx: AnsibleContext, hostvars: dict[str, Any]) -> dict[str, Any]:
    """The host's CONNECTION_VARS templated (vault secrets, -e), with the command line and ansible.cfg folded in."""
    from ansible.template import Templar

    templar = Templar(loader=ctx.loader, variables=hostvars)
    with vault_errors():
        out = {k: templar.template(hostvars[k]) for k in CONNECTION_VARS if k in hostvars}
    _fold_become(ctx, out)
    _fold("connection", "ssh", SSH_OPTIONS, _ssh_keys(ctx), out)
    return out


def _ssh_keys(ctx: AnsibleContext) -> dict[str, Any]:
    a = ctx.args
    return _given(remote_user=a.remote_user, private_key_file=a.private_key_file, timeout=a.timeout,
                  ssh_common_args=a.ssh_common_args, ssh_extra_args=a.ssh_extra_args)


def _fold_become(ctx: AnsibleContext, out: dict[str, Any]) -> None:
    """ansible_become / ansible_become_method: the variable, else -b / --become-method, else ansible.cfg; then
    the become plugin's own options for that method."""
    from ansible import constants as C

    a = ctx.args
    if "ansible_become" not in out and (a.become or C.DEFAULT_BECOME):
        out["ansible_become"] = True
    method, origin = C.config.get_config_value_and_origin("DEFAULT_BECOME_METHOD")
    if "ansible_become_method" not in out and (a.become_method or origin != "default"):
        out["ansible_become_method"] = a.become_method or method
    keys = _given(become_user=a.become_user, become_pass=ctx.prompted.become)
    _fold("become", str(out.get("ansible_become_method") or method), BECOME_OPTIONS, keys, out)


def _fold(plugin_type: str, plugin: str, options: tuple[tuple[str, str], ...], keys: dict[str, Any],
          out: dict[str, Any]) -> None:
    """Each option's value as the plugin would get it (its variables in `out` first, then `keys` — the command
    line — then environment and ansible.cfg); written to its variable unless it is only the plugin's default."""
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.plugins.loader import become_loader, connection_loader

    try:
        (connection_loader if plugin_type == "connection" else become_loader).get(plugin, class_only=True)
    except AnsibleError:
        return  # a plugin Ansible does not know: the transport refuses it by name
    defs = C.config.get_configuration_definitions(plugin_type, plugin)
    for option, var in options:
        if option not in defs:
            continue
        try:
            value, origin = C.config.get_config_value_and_origin(option, plugin_type=plugin_type,
                                                                  plugin_name=plugin, keys=keys, variables=out)
        except AnsibleError:  # a value of the wrong type (ansible_port=abc): the transport names host and variable
            continue
        if origin != "default" and value is not None and value != "":
            out[var] = value


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
