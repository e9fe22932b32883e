"""safeapply.redact at every exit point: a table of real-world secret shapes (each with what must go and what
must stay readable), lines that must stay as they are, whole-secret files, process command lines in a scan
built from captured probe output, a real ansible-playbook failure message, `--notify` against a real local
HTTP server, and control sequences from a host kept off the terminal."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from safeapply.redact import (
    MASK,
    clean_terminal,
    is_secret,
    patterns,
    redact_argv,
    redact_cmdline,
    redact_line,
    redact_text,
)

DATA = Path(__file__).parent / "scan_data"

# (where it is found, the line, what must not appear, what must stay readable)
SHAPES: list[tuple[str, str, str, str]] = [
    ("ini", "password = hunter2", "hunter2", "password ="),
    ("shell profile", "export DB_PASSWORD=hunter2", "hunter2", "export DB_PASSWORD="),
    ("shell profile, quoted", 'export AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
     "wJalrXUtnFEMI", "export AWS_SECRET_ACCESS_KEY="),
    ("systemd unit", 'Environment="DB_PASSWORD=hunter2"', "hunter2", 'Environment="DB_PASSWORD='),
    ("systemd unit, spaces", 'Environment="DB_PASSWORD=hunter two" "DEBUG=1"', "hunter", '"DEBUG=1"'),
    ("systemd unit, bare", "Environment=API_TOKEN=abc123def DEBUG=1", "abc123def", "DEBUG=1"),
    ("ExecStart --password x", "ExecStart=/usr/bin/app --password hunter2 --port 8080", "hunter2",
     "--port 8080"),
    ("ExecStart --password=x", "ExecStart=/usr/bin/app --password=hunter2 --port 8080", "hunter2",
     "--port 8080"),
    ("ExecStart --db-password", "ExecStart=/opt/x/bin/x serve --db-password 'hunter 2' -v", "hunter", " -v"),
    ("java -D", "ExecStart=/usr/bin/java -Dspring.datasource.password=hunter2 -jar app.jar", "hunter2",
     "-jar app.jar"),
    ("yaml list item", "  - password: hunter2", "hunter2", "  - password:"),
    ("compose environment list", '      - "MYSQL_ROOT_PASSWORD=hunter2"', "hunter2", "MYSQL_ROOT_PASSWORD="),
    ("compose environment list, bare", "      - POSTGRES_PASSWORD=hunter2", "hunter2", "POSTGRES_PASSWORD="),
    ("one-line json", '{"user": "bob", "password": "hunter2", "port": 5432}', "hunter2", '"user": "bob"'),
    ("one-line json, escaped quote", '{"api_key": "ab\\"cd1234", "ok": true}', "cd1234", '"ok": true'),
    ("python dict", "DATABASES = {'default': {'USER': 'app', 'PASSWORD': 'hunter2'}}", "hunter2", "'USER': 'app'"),
    ("wp-config.php", "define( 'DB_PASSWORD', 'hunter2' );", "hunter2", "define( 'DB_PASSWORD',"),
    ("php variable", "$db_password = 'hunter2';", "hunter2", "$db_password ="),
    ("ruby hash", "  :password => 'hunter2',", "hunter2", ":password =>"),
    ("NetworkManager psk", "psk=correcthorsebattery", "correcthorse", "psk="),
    ("wpa_supplicant psk", '    psk="correcthorsebattery"', "correcthorse", "psk="),
    ("wpa_supplicant 802.1x", '    private_key_passwd="hunter2"', "hunter2", "private_key_passwd="),
    ("hostapd", "wpa_passphrase=correcthorsebattery", "correcthorse", "wpa_passphrase="),
    ("debian interfaces", "    wpa-psk correcthorsebattery", "correcthorse", "wpa-psk"),
    ("WireGuard PrivateKey", "PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", "yAnz5TF", "PrivateKey ="),
    ("WireGuard PresharedKey", "PresharedKey = /UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=", "UwcSPg38",
     "PresharedKey ="),
    ("NetworkManager wireguard", "private-key=yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", "yAnz5TF",
     "private-key="),
    ("git remote", "\turl = https://bob:ghs_s3cr3tT0ken@git.example.com/ops/site.git", "s3cr3t",
     "https://bob:"),
    ("DATABASE_URL", "DATABASE_URL=postgres://app:hunter2@db.internal:5432/app", "hunter2", "db.internal:5432"),
    ("redis url, no user", "REDIS=redis://:hunter2@127.0.0.1:6379/0", "hunter2", "127.0.0.1:6379"),
    ("apt proxy", 'Acquire::http::Proxy "http://proxy:p%40ss@proxy.lan:3128/";', "p%40ss", "proxy.lan:3128"),
    ("password with @", "url: https://u:p@ss@host.example/x", "ss@host", "host.example/x"),
    ("Authorization Bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abcdefgh.ijklmnop", "eyJhbGci",
     "Authorization: Bearer"),
    ("Authorization Basic", "  Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "Authorization: Basic"),
    ("curl header in a unit", "ExecStart=/usr/bin/curl -H 'Authorization: Bearer abcdef123456' https://x/",
     "abcdef123456", "https://x/"),
    ("nginx header", '        proxy_set_header Authorization "Bearer abcdef123456";', "abcdef123456",
     "proxy_set_header"),
    ("X-Auth-Token header", "X-Auth-Token: 5up3r53cr3tvalue", "5up3r53cr3t", "X-Auth-Token:"),
    ("k3s kubeconfig client-key-data", "    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1I",
     "LS0tLS1CRUdJTi", "client-key-data:"),
    ("k3s kubeconfig token", "    token: K10d4b1f9e3c2a7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0::server:8f3a",
     "K10d4b1f9", "token:"),
    ("k3s config.yaml", 'token: "K10d4b1f9e3c2a7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0::server:8f3a"', "K10d4b",
     "token:"),
    ("htpasswd", "admin:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "HqJZimcK", "admin:"),
    ("htpasswd bcrypt", "alice:$2y$05$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "N9qo8uLO",
     "alice:"),
    ("htpasswd sha", "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "W6ph5Mm5", "bob:"),
    ("shadow line", "root:$y$j9T$Kf7Zq0c1X9$u1IxB8tJ3Hq4M5zG6yA7bC8dE9fG0hI1jK2lM3nO4p:19700:0:99999:7:::",
     "u1IxB8tJ", ":19700:0:99999:7:::"),
    ("redis requirepass", "requirepass foobared-s3cret", "foobared", "requirepass"),
    ("redis masterauth", "masterauth foobared-s3cret", "foobared", "masterauth"),
    ("keepalived", "        auth_pass k33pal1ve", "k33pal1ve", "auth_pass"),
    ("openldap", "rootpw {SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "5en6G6Me", "rootpw"),
    ("snmpd", "rocommunity n0tpubl1c 10.0.0.0/8", "n0tpubl1c", "rocommunity"),
    ("bind tsig", '    secret "R3HI8P6BKw9ZwXwN3VZKuQ==";', "R3HI8P6B", "secret"),
    ("fstab cifs", "//nas/share /mnt/share cifs username=bob,password=hunter2,uid=1000 0 0", "hunter2",
     "username=bob"),
    ("ansible inventory", "web1 ansible_host=10.0.0.5 ansible_become_pass=hunter2", "hunter2",
     "ansible_host=10.0.0.5"),
    ("netrc", "machine api.github.com login bob password hunter2", "hunter2", "login bob"),
    ("aws credentials", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtn",
     "aws_secret_access_key ="),
    ("django settings", "SECRET_KEY = 'django-insecure-9x!a7b#c$d%e'", "django-insecure", "SECRET_KEY ="),
    ("commented-out secret", "#password=oldhunter2", "oldhunter2", "#password="),
    ("url query token", "webhook = https://hooks.example.com/x?token=abc123def&channel=ops", "abc123def",
     "channel=ops"),
    ("slack webhook", "SLACK=https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "XXXXXXXXXXXX", "hooks.slack.com"),
    ("github token by shape", "git clone https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/x",
     "ghp_0123456789", "github.com/x"),
    ("gitlab token by shape", "CI note: glpat-AbCdEfGhIjKlMnOpQrSt used", "glpat-AbCd", "CI note:"),
    ("docker -e", "docker run -e MYSQL_ROOT_PASSWORD=hunter2 -p 3306:3306 mysql:8", "hunter2", "-p 3306:3306"),
    ("env prefix (the rest of a line after key=: all of it)", "PGPASSWORD=hunter 2 psql -h db", "hunter",
     "PGPASSWORD="),
    ("vault password var literal", "admin_password: \"{{ 'hunter2' | password_hash('sha512') }}\"", "hunter2",
     "admin_password:"),
]

# Lines that name a secret but hold none: shown unchanged.
UNCHANGED = [
    "PasswordAuthentication no",
    "PermitEmptyPasswords no",
    "KbdInteractiveAuthentication no",
    "password   required   pam_unix.so obscure yescrypt",
    "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt",
    "passwd:         files systemd",
    "shadow:         files",
    "PASS_MAX_DAYS\t99999",
    "vault_password_file = ~/.vault_pass.txt",
    "smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd",
    "ExecStart=/usr/bin/app --password-file /run/secrets/db --port 8080",
    "ExecStart=/usr/bin/docker login --password-stdin -u bob registry.example.com",
    "  password: \"{{ vault_admin_password }}\"",
    "    - name: set password_hash for the admin user",
    "      password_hash: sha512",
    "url = https://github.com/ansible/ansible.git",
    "url = ssh://git@github.com/ansible/ansible.git",
    "    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
    "key_mgmt=WPA-PSK",
    "psk-flags=0",
    "ssl_certificate_key /etc/ssl/private/example.key;",
    "HostKey /etc/ssh/ssh_host_ed25519_key",
    "Listen 80",
    "port = 5432",
    'echo "$1$2"',
    "no_log: true",
    "# Set the password for the admin user below",
]


def test_secret_shapes_are_redacted() -> None:
    """Every shape at once, so that a failure lists all of them: (where, what came out)."""
    assert len(SHAPES) >= 40 and len({s[0] for s in SHAPES}) == len(SHAPES)
    wrong = []
    for where, line, secret, kept in SHAPES:
        out = redact_line(line)
        if secret in out or MASK not in out or kept not in out or redact_line(out) != out or \
                redact_line(line + "\n") != out + "\n" or secret in redact_text(f"before\n{line}\nafter\n"):
            wrong.append((where, out))
    assert wrong == []


def test_lines_without_a_secret_stay_unchanged() -> None:
    assert [(line, redact_line(line)) for line in UNCHANGED if redact_line(line) != line] == []


PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
LE_ACCOUNT = b'{"e": "AQAB", "d": "Xm9vYmFy_private_exponent", "n": "0vx7ago", "kty": "RSA"}'

# (path, content, why it is a secret as a whole)
SECRET_FILES: list[tuple[str, bytes]] = [
    ("/etc/letsencrypt/accounts/acme-v02.api.letsencrypt.org/directory/3f1a/private_key.json", b"{}"),
    ("/srv/acme/account.json", LE_ACCOUNT),
    ("/etc/nginx/.htpasswd", b"admin:$apr1$x$y\n"),
    ("/etc/apache2/htpasswd", b"admin:$apr1$x$y\n"),
    ("/etc/NetworkManager/system-connections/home.nmconnection", b"[wifi]\nssid=home\n"),
    ("/etc/wpa_supplicant/wpa_supplicant.conf", b"network={\n ssid=\"home\"\n}\n"),
    ("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf", b"ctrl_interface=/run/wpa_supplicant\n"),
    ("/etc/rancher/k3s/k3s.yaml", b"apiVersion: v1\n"),
    ("/root/deploy/cluster.yaml", b"users:\n- name: default\n  user:\n    client-key-data: LS0tLS1CRUdJTi\n"),
    ("/var/lib/rancher/k3s/server/token", b"K10abc::server:def\n"),
    ("/etc/wireguard/privatekey", b"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"),
    ("/etc/ssl/private/site.pem", b"x"),
    ("/etc/openvpn/client.conf", f"remote vpn 1194\n<key>\n{PEM}</key>\n".encode()),
    ("/root/.pgpass", b"db:5432:app:app:hunter2\n"),
    ("/etc/postfix/sasl_passwd", b"[smtp.example.com]:587 bob:hunter2\n"),
    ("/etc/ppp/chap-secrets", b"bob * hunter2 *\n"),
]


def test_whole_secret_files() -> None:
    assert [path for path, content in SECRET_FILES if not is_secret(path, content, patterns())] == []
    ordinary = [("/etc/ssh/sshd_config", b"PasswordAuthentication no\n"),
                ("/etc/wireguard/wg0.conf", b"[Interface]\nAddress = 10.0.0.1/24\n"),  # its lines are redacted
                ("/etc/letsencrypt/renewal/example.com.conf", b"account = 3f1a\n"),
                ("/etc/nginx/sites-enabled/default", b'{"kty": "RSA", "n": "public"}\n')]
    assert [path for path, content in ordinary if is_secret(path, content, patterns())] == []


def test_private_key_blocks_inside_text_are_collapsed() -> None:
    out = redact_text(f"FAILED: could not parse\n{PEM}next line\n")
    assert "b3BlbnNzaC1rZXkt" not in out and MASK in out
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in out and out.endswith("next line\n")


ARGVS: list[tuple[list[str], str, str]] = [
    (["/usr/bin/mysqld_exporter", "--mysqld.password", "hunter2", "--web.listen-address=:9104"], "hunter2",
     "--web.listen-address=:9104"),
    (["mysql", "-uroot", "-phunter2", "app"], "hunter2", "-uroot"),
    (["sshpass", "-p", "hunter2", "ssh", "backup@nas"], "hunter2", "backup@nas"),
    (["redis-cli", "-a", "hunter2", "-p", "6380"], "hunter2", "6380"),
    (["curl", "-u", "bob:hunter2", "https://x/"], "hunter2", "bob:"),
    (["/bin/sh", "-c", "PGPASSWORD=hunter2 pg_dump -h db app > /backup/app.sql"], "hunter2", "pg_dump -h db"),
    (["/usr/bin/app", "--token=abc123def456", "--listen", ":8080"], "abc123def456", ":8080"),
    (["node", "server.js", "--api-key", "sk_live_0123456789abcdefABCD"], "sk_live_0123", "server.js"),
    (["rclone", "serve", "webdav", "--pass", "hunter2", "--addr", ":8081"], "hunter2", ":8081"),
]


def test_process_command_lines() -> None:
    wrong = []
    for argv, secret, kept in ARGVS:
        out = redact_argv(argv)
        if len(out) != len(argv) or any(secret in a for a in out) or kept not in " ".join(out) or \
                secret in redact_cmdline(" ".join(argv)):
            wrong.append(out)
    assert wrong == []
    for argv in (["/usr/sbin/sshd", "-D"], ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"],
                 ["mysql", "-P3306", "-p", "app"], ["/usr/bin/python3", "-m", "http.server", "8081"],
                 ["docker", "login", "--password-stdin", "-u", "bob"]):
        assert redact_argv(argv) == tuple(argv)


# ---- the scan: command lines redacted where they enter HostState ------------------------------------------

def _probe_with_secret_cmdline() -> dict[str, Any]:
    """Real probe output (bookworm) with pid 77's command line as a real exporter's: its secret as an argument."""
    raw: dict[str, Any] = json.loads((DATA / "bookworm-listeners.json").read_text())
    raw = copy.deepcopy(raw)
    raw["processes"]["77"]["cmdline"] = [
        "/usr/bin/python3", "-m", "http.server", "8081", "--bind", "127.0.0.2",
        "--password", "hunter2", "DB_URL=postgres://app:s3cr3t@db/app", "--token=abc123def456"]
    return raw


def test_scan_command_lines_are_redacted_in_host_state() -> None:
    from safeapply.probe.parse import parse_probe

    state = parse_probe("cap", _probe_with_secret_cmdline())
    owners = [o for lst in state.listeners for o in lst.owners if o.pid == 77]
    assert owners, "pid 77 owns a listener in the captured output"
    cmd = " ".join(owners[0].cmdline)
    assert "--bind 127.0.0.2" in cmd and "postgres://app:" in cmd
    dumped = json.dumps(state.to_dict())  # what scan --json, the run record and show --json carry
    for secret in ("hunter2", "s3cr3t", "abc123def456"):
        assert secret not in dumped


def test_scan_of_this_machine_redacts_command_lines(tmp_path: Path) -> None:
    """A real process of ours listening on loopback, its secret on its command line; scanned in-process."""
    import socket
    import subprocess
    import sys

    from safeapply.scan import scan_local

    code = ("import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen();"
            "print(s.getsockname()[1], flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, "--password", "hunter2"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        state = scan_local("me")
        mine = [o for lst in state.listeners if lst.port == port for o in lst.owners]
        assert mine and mine[0].pid == proc.pid
        assert "--password" in mine[0].cmdline and "hunter2" not in json.dumps(state.to_dict())
    finally:
        proc.kill()
        proc.wait()
        del socket


# ---- task failure messages, from a real ansible-playbook run ------------------------------------------------

def test_failed_task_message_is_redacted(tmp_path: Path) -> None:
    from safeapply.apply import ApplyRequest, run_playbook

    inv = tmp_path / "inv.ini"
    inv.write_text('h1 ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n')
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                  "    - name: connect\n"
                  "      fail: {msg: \"login to https://app:s3cr3t@db.internal failed with password=hunter2\"}\n")
    res = run_playbook(ApplyRequest(pb, [str(inv)]))
    assert res.failed_hosts == ["h1"]
    msg = res.failures[0].message
    assert "hunter2" not in msg and "s3cr3t" not in msg and "db.internal failed with password=" in msg
    assert "hunter2" not in json.dumps(res.to_dict())


# ---- --notify: status and run id only, unless asked -------------------------------------------------------

class _Sink(BaseHTTPRequestHandler):
    got: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Sink.got.append({"title": self.headers["Title"], "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = HTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Sink.got = []
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/topic"
    finally:
        srv.shutdown()
        srv.server_close()


def _record(tmp_path: Path) -> Any:
    from safeapply.records import new_record

    pb = tmp_path / "secret-project-db.yml"
    pb.write_text("- hosts: all\n")
    rec = new_record(pb)
    rec.status, rec.exit_code = "rolled_back", 20
    rec.sections["hosts"] = ["db-prod-7.internal"]
    return rec


MESSAGE = "web1: task 'db' failed: login with password=hunter2 refused"


def test_notify_sends_status_and_run_id_only(server: str, tmp_path: Path) -> None:
    from safeapply import run_stages as stages
    from safeapply.run_options import RunOptions

    rec = _record(tmp_path)
    opts = RunOptions(playbook=tmp_path / "secret-project-db.yml", notify_url=server)
    assert stages.notify(opts, rec, MESSAGE) == "delivered"
    [got] = _Sink.got
    assert got["body"] == f"run {rec.id}: rolled_back (exit 20)"
    assert "db-prod" not in got["title"] + got["body"] and "secret-project" not in got["title"]


def test_notify_details_when_asked_still_redacted(server: str, tmp_path: Path) -> None:
    from safeapply import run_stages as stages
    from safeapply.run_options import RunOptions

    rec = _record(tmp_path)
    opts = RunOptions(playbook=tmp_path / "secret-project-db.yml", notify_url=server, notify_details=True)
    assert stages.notify(opts, rec, MESSAGE) == "delivered"
    [got] = _Sink.got
    assert "db-prod-7.internal" in got["body"] and "refused" in got["body"] and "hunter2" not in got["body"]


def test_run_has_a_notify_details_flag() -> None:
    from typer.testing import CliRunner

    from safeapply.cli.app import app

    res = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--notify-details" in res.output


# ---- terminal control sequences from a host ----------------------------------------------------------------

def test_clean_terminal_escapes_control_sequences() -> None:
    evil = "ok\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\r\x08\x9b1m\u202eevil\tend\n"
    out = clean_terminal(evil)
    assert out == "ok\\x1b]0;pwned\\x07 \\x1b[2J\\x1b[31mred\\x0d\\x08\\x9b1m\\u202eevil\tend\n"
    assert clean_terminal("plain text, üñí, tabs\tand\nnewlines") == "plain text, üñí, tabs\tand\nnewlines"


def test_scan_table_shows_no_escape_sequences_from_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    from safeapply.cli.scan import _render_state
    from safeapply.probe.parse import parse_probe

    raw = _probe_with_secret_cmdline()
    raw["processes"]["77"]["comm"] = "py\x1b]0;owned\x07\x1b[2J"
    raw["facts"]["os_release"] = 'PRETTY_NAME="Debian\x1b[5m 12"\n'
    _render_state(parse_probe("cap", raw))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b" in out


def test_diff_shows_no_escape_sequences_from_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`safeapply diff` on a real snapshot of a temp tree, through the local transport: a file on the host
    gains an OSC title change and a screen clear; the human output shows them escaped, redacted still."""
    from typer.testing import CliRunner

    from safeapply.cli.app import app
    from safeapply.snapshot import Store, take
    from safeapply.transport.local import LocalTransport

    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "etc"
    root.mkdir()
    (root / "motd").write_text("hello\n")
    take(LocalTransport("local1"), [str(root)], Store(), target_base=str(tmp_path / "target"))
    (root / "motd").write_text("hello\n\x1b]0;owned\x07\x1b[2J\x1b[31mred\nexport API_TOKEN=abc123def456\n")
    inv = tmp_path / "inv.ini"
    inv.write_text('local1 ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n')
    res = CliRunner().invoke(app, ["diff", "local1", "-i", str(inv)])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "+\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred" in res.output and "abc123def456" not in res.output
