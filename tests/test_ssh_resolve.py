"""A host's SSH settings come from OpenSSH's own resolution (`ssh -G` with Ansible's connection variables as
command-line options), so Include, Match, Host patterns, ProxyJump, known_hosts files and ssh-agent behave as in
`ssh`. The unit tests run the real `ssh -G` on temporary config files; the others connect to a sandbox."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from safeapply.cli import main
from safeapply.errors import ConfigError, ExitCode, UsageError
from safeapply.transport.sshconfig import ssh_target


def _ssh_g(*args: str) -> dict[str, str]:
    out = subprocess.run(["ssh", "-G", *args], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    return {k: v for k, _, v in (ln.partition(" ") for ln in reversed(out.stdout.splitlines()))}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "extra.conf").write_text("Host web*\n  User webadmin\n  ProxyJump jump1,ops@jump2:2222\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Include {tmp_path}/extra.conf\n"
        "Match host db1\n  Port 2200\n  IdentityFile ~/.ssh/%r_%h\n"
        "Host db*\n  HostName 10.9.9.9\n  User dbadmin\n  IdentitiesOnly yes\n"
        "Host jump2\n  HostName 192.0.2.2\n  IdentityFile /keys/jump2\n"
        f"Host *\n  UserKnownHostsFile {tmp_path}/kh1 {tmp_path}/kh2\n  GlobalKnownHostsFile {tmp_path}/global\n"
    )
    return cfg


def test_include_match_and_host_patterns_as_ssh_resolves_them(config: Path) -> None:
    web = ssh_target("web1", {"ansible_ssh_common_args": f"-F {config}"})
    assert (web.hostname, web.user, web.port) == ("web1", "webadmin", 22)  # from the Included file
    g = _ssh_g("-F", str(config), "web1")
    assert (web.hostname, web.user, str(web.port)) == (g["hostname"], g["user"], g["port"])
    db = ssh_target("db1", {"ansible_ssh_common_args": f"-F {config}"})
    assert (db.hostname, db.user, db.port, db.identities_only) == ("10.9.9.9", "dbadmin", 2200, True)
    assert db.key_files == (str(Path.home() / ".ssh/dbadmin_10.9.9.9"),)  # %r/%h expanded as ssh does
    assert db.known_hosts == (str(config.parent / "kh1"), str(config.parent / "kh2"))
    assert db.global_known_hosts == (str(config.parent / "global"),)


def test_proxyjump_hops_each_resolved_by_ssh(config: Path) -> None:
    """ProxyJump jump1,ops@jump2:2222: the last hop is reached through the earlier ones, each with its own
    settings from the same config (-F is passed on, as OpenSSH passes it to the ssh it runs per hop)."""
    web = ssh_target("web1", {"ansible_ssh_common_args": f"-F {config}"})
    last = web.proxy_jump
    assert last is not None and (last.hostname, last.user, last.port) == ("192.0.2.2", "ops", 2222)
    assert last.key_files[0] == "/keys/jump2" and last.name == "jump2 (jump host of web1)"
    first = last.proxy_jump
    assert first is not None and (first.hostname, first.port, first.proxy_jump) == ("jump1", 22, None)
    # -J in ansible_ssh_common_args too
    t = ssh_target("x", {"ansible_host": "10.1.1.1", "ansible_ssh_common_args": f"-F {config} -J jump2"})
    assert t.proxy_jump is not None and t.proxy_jump.hostname == "192.0.2.2"


def test_ansible_variables_win_over_ssh_args_and_config(config: Path) -> None:
    """As ansible-playbook's ssh connection passes them: -o Port/User/IdentityFile/ConnectTimeout before the
    common args, and OpenSSH keeps the first value."""
    t = ssh_target("db1", {"ansible_host": "db1", "ansible_port": 2022, "ansible_user": "deploy",
                           "ansible_ssh_private_key_file": "/k/deploy", "ansible_ssh_timeout": 7,
                           "ansible_ssh_common_args": f"-F {config} -p 9 -l other", "ansible_password": "pw"})
    assert (t.hostname, t.user, t.port, t.timeout) == ("10.9.9.9", "deploy", 2022, 7.0)
    assert t.key_files[0] == "/k/deploy" and t.required_keys == ("/k/deploy",)
    assert t.password == "pw" and "pw" not in repr(t)


def test_variable_aliases_resolve_as_ansibles_ssh_connection_does() -> None:
    """Where a host sets two variables of one option (ansible_host and ansible_ssh_host, ...), the one Ansible's
    ssh connection plugin takes wins (pinned against ansible-core's config manager)."""
    from ansible import constants as C
    from ansible.plugins.loader import connection_loader

    connection_loader.get("ssh", class_only=True)
    v = {"inventory_hostname": "h", "ansible_host": "a1.lan", "ansible_ssh_host": "a2.lan", "ansible_user": "u1",
         "ansible_ssh_user": "u2", "ansible_port": 1001, "ansible_ssh_port": 1002,
         "ansible_private_key_file": "/k1", "ansible_ssh_private_key_file": "/k2", "ansible_password": "p1",
         "ansible_ssh_pass": "p2", "ansible_ssh_common_args": "-F /dev/null"}
    t = ssh_target("h", v)

    def ansible(option: str) -> Any:
        return C.config.get_config_value(option, plugin_type="connection", plugin_name="ssh", variables=v)

    assert (t.hostname, t.user, t.port, t.required_keys[0], t.password) == (
        ansible("host"), ansible("remote_user"), ansible("port"), ansible("private_key_file"), ansible("password"))


def test_options_ssh_rejects_are_one_line(config: Path) -> None:
    with pytest.raises(UsageError, match=r"OpenSSH rejects the SSH options: .*[Bb]ad configuration option"):
        ssh_target("h", {"ansible_ssh_common_args": f"-F {config} -o NoSuchOption=1"})


def test_ssh_missing_on_the_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="OpenSSH client `ssh` is not installed"):
        ssh_target("nossh", {"ansible_host": "192.0.2.77"})


def _ping(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The exit code and the error line (stderr; ping's per-host table goes to stdout)."""
    rc = main(["ping", *args])
    cap = capsys.readouterr()
    return rc, cap.err if rc else cap.out


def test_proxy_command_injection_through_ansible_host_is_refused(tmp_path, capsys) -> None:
    """OpenSSH runs ProxyCommand through a shell after %h substitution; a host name with shell characters
    would run commands on the controller. Such names are refused (OpenSSH 9.6+ refuses them too)."""
    marker = tmp_path / "x"
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"h1": {
        "ansible_host": f"127.0.0.1; touch {marker}", "ansible_ssh_common_args": "-o ProxyCommand='nc %h %p'"}}}}))
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == ExitCode.USAGE, out
    assert "contains characters OpenSSH refuses" in out and len(out.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("conn", ["community.docker.docker", "winrm", "ansible.netcommon.network_cli"])
def test_connection_plugin_safeapply_cannot_serve_is_refused(conn: str, tmp_path, capsys) -> None:
    inv = tmp_path / "inv.ini"
    inv.write_text(f"h1 ansible_connection={conn} ansible_host=192.0.2.1\n")
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == ExitCode.CONFIG, out
    assert f"ansible_connection={conn} is not supported" in out and len(out.strip().splitlines()) == 1


def test_known_hosts_markers_patterns_and_hashes(tmp_path: Path) -> None:
    """paramiko's own known_hosts parser raises on `@cert-authority`/`@revoked` lines; ours reads them."""
    key = tmp_path / "hk"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    import paramiko

    from safeapply.transport import knownhosts

    pk = paramiko.PKey.from_path(str(key))
    pub = Path(f"{key}.pub").read_text().split()
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIOwOb615IMRJaSgBIadBfOzspqU0hsrmgaY0tS1mckmn"
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@cert-authority *.example.org {pub[0]} {other}\n# comment\n"
                  f"{paramiko.HostKeys.hash_host('hashed.example.org')} {pub[0]} {pub[1]}\n"
                  f"*.lan,!evil.lan {pub[0]} {pub[1]}\n[odd.lan]:2222 {pub[0]} {other}\n")
    entries = knownhosts.read([str(kh), str(tmp_path / "missing")])
    assert knownhosts.check(entries, "hashed.example.org", pk).status == "known"
    assert knownhosts.check(entries, "web.lan", pk).status == "known"
    assert knownhosts.check(entries, "evil.lan", pk).status == "unknown"
    assert knownhosts.check(entries, "[odd.lan]:2222", pk).status == "changed"
    assert knownhosts.check(entries, "ca.example.org", pk).ca_listed
    with kh.open("a") as f:
        f.write(f"@revoked * {pub[0]} {pub[1]}\n")
    assert knownhosts.check(knownhosts.read([str(kh)]), "web.lan", pk).status == "revoked"


# ---- against a sandbox ------------------------------------------------------------------------------------


def _inventory(tmp_path: Path, host: Any, **changes: str | None) -> Path:
    data = yaml.safe_load(host.inventory.read_text())
    hv = data["all"]["hosts"][host.name]
    for k, v in changes.items():
        if v is None:
            hv.pop(k, None)
        else:
            hv[k] = v
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _proxy(host: Any, known: str) -> str:
    return f'-o ProxyCommand="{host.paths.proxy_command}" -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes'


@pytest.mark.sandbox
def test_global_known_hosts_file_with_hashed_entry(host_a, tmp_path, capsys) -> None:
    hk = host_a.paths.known_hosts.read_text().split()
    glob = tmp_path / "ssh_known_hosts"
    import paramiko

    glob.write_text(f"{paramiko.HostKeys.hash_host(host_a.paths.machine)} {hk[1]} {hk[2]}\n")
    args = f"{_proxy(host_a, '/dev/null')} -o GlobalKnownHostsFile={glob}"
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_ssh_common_args=args)))
    assert rc == 0, out


@pytest.mark.sandbox
@pytest.mark.parametrize("conn", ["paramiko", "ansible.builtin.ssh", "smart"])
def test_ssh_like_connection_plugins_are_served_over_ssh(conn: str, host_a, tmp_path, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_connection=conn)))
    assert rc == 0, out


def test_builtin_local_is_local() -> None:
    from safeapply.inventory import Host

    assert Host("h", {"ansible_connection": "ansible.builtin.local"}).is_local


@pytest.mark.sandbox
def test_revoked_host_key_is_refused_even_if_listed(host_a, tmp_path, capsys) -> None:
    hk = host_a.paths.known_hosts.read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"{host_a.paths.machine} {hk[1]} {hk[2]}\n@revoked * {hk[1]} {hk[2]}\n")
    inv = _inventory(tmp_path, host_a, ansible_ssh_common_args=_proxy(host_a, str(known)))
    rc, out = _ping(capsys, "-i", str(inv), "--accept-new-host-keys")
    assert rc == ExitCode.HOST_KEY, out
    assert "REVOKED" in out


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Our own ssh-agent on a socket in tmp_path (killed by its PID afterwards), as SSH_AUTH_SOCK."""
    sock = tmp_path / "agent.sock"
    out = subprocess.run(["ssh-agent", "-a", str(sock)], capture_output=True, text=True, check=True).stdout
    pid = int(out.split("SSH_AGENT_PID=")[1].split(";")[0])
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    yield sock
    os.kill(pid, signal.SIGTERM)


def _protected_copy(tmp_path: Path) -> Path:
    """A passphrase-protected copy of the sandbox controller key, without its .pub next to it."""
    from safeapply.sandbox.paths import controller_key

    key = tmp_path / "protected_key"
    shutil.copy(controller_key(), key)
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "s3cret-pass", "-f", str(key)], check=True)
    return key


def _ssh_add(key: Path, sock: Path, tmp_path: Path) -> None:
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho s3cret-pass\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
           "DISPLAY": ":0"}
    subprocess.run(["ssh-add", str(key)], env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)


@pytest.mark.sandbox
def test_passphrase_key_file_is_used_through_the_agent(host_a, tmp_path, capsys, agent) -> None:
    key = _protected_copy(tmp_path)
    inv = _inventory(tmp_path, host_a, ansible_ssh_private_key_file=str(key))
    rc, out = _ping(capsys, "-i", str(inv))  # not in the agent yet: the hint says what to do
    assert rc == ExitCode.AUTH, out
    assert f"ssh-add {key}" in out and "passphrase-protected" in out
    _ssh_add(key, agent, tmp_path)
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == 0, out
    # no IdentityFile at all: the agent's keys are offered, as ssh does
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_ssh_private_key_file=None)))
    assert rc == 0, out


@pytest.mark.sandbox
def test_identities_only_keeps_other_agent_keys_out(host_a, tmp_path, capsys, agent) -> None:
    """IdentitiesOnly yes: the agent's key is used only where it matches a configured file (here: none does)."""
    _ssh_add(_protected_copy(tmp_path), agent, tmp_path)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    common = yaml.safe_load(host_a.inventory.read_text())["all"]["hosts"][host_a.name]["ansible_ssh_common_args"]
    inv = _inventory(tmp_path, host_a, ansible_ssh_private_key_file=str(other),
                     ansible_ssh_common_args=f"{common} -o IdentitiesOnly=yes")
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == ExitCode.AUTH, out
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_ssh_private_key_file=str(other))))
    assert rc == 0, out  # without IdentitiesOnly the agent's key gets its turn
    # IdentityFile naming only a public key (the private one lives in the agent), with IdentitiesOnly
    from safeapply.sandbox.paths import controller_key

    pub = tmp_path / "only.pub"
    shutil.copy(f"{controller_key()}.pub", pub)
    inv = _inventory(tmp_path, host_a, ansible_ssh_private_key_file=str(pub),
                     ansible_ssh_common_args=f"{common} -o IdentitiesOnly=yes")
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == 0, out
