"""What safeapply must never show or send: whole secret files (by path or by content), secret values in text
and process command lines; and what a terminal must never receive from a host: control sequences.

Every exit point calls this module: snapshot diffs, Ansible's diffs and task failure messages (apply.py),
scan process command lines (probe/parse.py, so `scan --json`, run records and `show` get them redacted),
`--notify`, and the human renderers (`clean_terminal`). The shapes it knows are pinned by tests/test_redact.py.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence

MASK = "<redacted>"

SECRET_PATHS = (
    "*/shadow", "*/shadow-", "*/gshadow", "*/gshadow-", "*/ssh_host_*_key", "*/ssl/private/*", "*.key",
    "*/id_rsa", "*/id_ecdsa", "*/id_ed25519", "*/id_dsa", "*/.git-credentials", "*/krb5.keytab", "*.keytab",
    "*.htpasswd", "*/htpasswd", "*/htpasswd.*", "*.nmconnection", "*/wpa_supplicant*.conf",
    "*/wpa_supplicant/*", "*/letsencrypt/accounts/*", "*/letsencrypt/keys/*", "*/privkey*.pem",
    "*/wireguard/*private*", "*/wireguard/*psk*", "*/rancher/k3s/k3s.yaml", "*/k3s/server/token",
    "*/k3s/server/node-token", "*/kubernetes/admin.conf", "*/.kube/config", "*/kubeconfig", "*/.pgpass",
    "*/.netrc", "*/.my.cnf", "*/.aws/credentials", "*/.docker/config.json", "*/ppp/chap-secrets",
    "*/ppp/pap-secrets", "*/ipsec.secrets", "*/sasl_passwd", "*/sasl_passwd.db", "*/rsyncd.secrets",
    "*/.erlang.cookie", "*/.vault_pass*", "*/vault_pass*", "*/opasswd", "*/security/opasswd",
)
SECRET_CONTENT = (b"PRIVATE KEY-----", b"BEGIN OPENSSH PRIVATE KEY", b"PRIVATE KEY BLOCK-----",
                  b"client-key-data:")
_JWK_PRIVATE = re.compile(rb'"kty"\s*:.*"d"\s*:\s*"|"d"\s*:\s*".*"kty"\s*:', re.S)  # Let's Encrypt account key

_KW = (r"(?:pass(?:wd|word|phrase)?|secret|token|api[_-]?key|apikey|credentials?|private[_-]?key|psk"
       r"|pre[_-]?shared[_-]?key|masterauth|(?:bind|root|db|admin)[_-]?pwd?|(?:ro|rw)community|wep[_-]?key\d*"
       r"|client[_-]?key[_-]?data|auth[_-]?key|signing[_-]?key|encryption[_-]?key)")
_KEY = r"[\w.\-]{0,64}" + _KW + r"[\w.\-]{0,64}"  # bounded: a 500 kB minified line stays linear
# Keys named like a secret whose value is not one: a file, a switch, a policy, a size.
_NOT_SECRET_KEY = re.compile(
    r"(?i)(?:authentication|file|path|dir|maps?|command|cmd|stdin|length|len|days|age|policy|prompt|type"
    r"|flags|hash|min|max|ttl|timeout|lifetime|expiry|expire|enabled|required|mode|method|helper|manager)$")
_NOT_SECRET_VALUE = re.compile(
    r"""(?ix)^["']?(?:yes|no|true|false|on|off|none|null|~|\*|)["']?[;,]?$"""
    r"""|^["']?\{\{[^'"{}]*\}\}["']?$"""  # a variable reference, never a literal
    r"""|^!vault\b""")
_PAM = re.compile(r"^\s*-?(?:auth|account|password|session)\s+(?:required|requisite|sufficient|optional|include"
                  r"|substack|\[)")
_NSSWITCH = re.compile(r"^\s*(?:passwd|shadow|gshadow)\s*:\s*(?:files|compat|systemd|sss|ldap|nis|db|winbind"
                       r"|extrausers)\b")
# `key = value`, `key: value`, `key value`, `- key: value`, `$key = 'v'`, `key => v`, `# key=value`.
_ASSIGN = re.compile(r"(?i)^(\s*(?:-\s+|[#;]+\s*(?=[\w.\-$\"']*\s*[:=]))?[\"']?[$@:]?(" + _KEY +
                     r")[\"']?\s*(?:=>|[:=]|\s)\s*)(\S.*?)(\s*)$")
_ENV_QUOTED = re.compile(r"(?i)(\"(" + _KEY + r")=)([^\"]*)(\")")  # Environment="DB_PASSWORD=a b"
_ENV = re.compile(r"(?i)(?<![\w.\-])(-{0,2}(" + _KEY + r")=)(\"[^\"]*\"|'[^']*'|[^\s\"',;&]+)")
_QUOTED_KEY = re.compile(r"""(?i)((["'])(""" + _KEY + r""")\2\s*(?:=>|[:,])\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
                         r"""|[^\s,}\]]+)""")  # JSON, Python/PHP dicts, define('DB_PASSWORD', 'x')
_FLAG = re.compile(r"(?i)(?<![\w.\-])(--?(" + _KEY + r"))(\s+)(\"[^\"]*\"|'[^']*'|[^\s\"'-][^\s\"']*)")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://[^/\s:@]{0,256}:)([^/\s]+)(@)")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest"
                          r"|negotiate|bot)\s+)?)([^\s\"']+)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([\w.~+/\-]{8,}=*)")
_NETRC = re.compile(r"(?i)^(\s*(?:machine\s+\S+|default)\b.*?\b(?:password|passwd)\s+)(\S+)")
_CRYPT = re.compile(r"\$(?:1|2[abxy]?|5|6|7|y|gy|apr1|argon2(?:id|i|d)|scrypt|pbkdf2[\w\-]*|sha1|md5)\$"
                    r"[./A-Za-z0-9=,]+\$[./A-Za-z0-9$=,+\-]{8,}|\{(?:S?SHA\d*|S?MD5|CRYPT|PBKDF2[\w\-]*)\}[A-Za-z0-9+/=.$\-]+")
_TOKENS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[\w\-]{20,}|xox[abposr]-[\w\-]{10,}"
    r"|sk_live_\w{16,}|rk_live_\w{16,}|sk-[A-Za-z0-9_\-]{20,}|AIza[\w\-]{35}|K10[0-9a-f]{40,}::\S+"
    r"|eyJ[\w\-]{8,}\.eyJ[\w\-]{8,}\.[\w\-]{8,})"
    r"|(?<=hooks\.slack\.com/services/)[\w/]+|(?<=/api/webhooks/)\d+/[\w\-]+")
_PEM_BLOCK = re.compile(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----).*?(-----END [A-Z0-9 ]*PRIVATE KEY"
                        r"(?: BLOCK)?-----)", re.S)
# Programs whose short flags carry a password: mysql -pSECRET, sshpass -p SECRET, redis-cli -a SECRET.
_ATTACHED = {"mysql": "-p", "mysqldump": "-p", "mysqladmin": "-p", "mariadb": "-p", "mariadb-dump": "-p"}
_NEXT = {"sshpass": ("-p",), "redis-cli": ("-a",), "curl": ("-u", "--user", "-U", "--proxy-user"),
         "smbclient": ("-U",)}


def patterns(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Built-in secret path patterns, plus $SAFEAPPLY_SECRET_PATHS (colon-separated) and `extra`."""
    env = [p for p in os.environ.get("SAFEAPPLY_SECRET_PATHS", "").split(":") if p]
    return (*SECRET_PATHS, *env, *extra)


def is_secret(path: str, content: bytes | None, pats: Sequence[str]) -> bool:
    """A file that is a secret as a whole: its path matches `pats`, or its content holds key material."""
    if path and any(fnmatch.fnmatchcase(path, p) for p in pats):
        return True
    if content is None:
        return False
    return any(m in content for m in SECRET_CONTENT) or bool(_JWK_PRIVATE.search(content[:1 << 16]))


def redact_line(line: str) -> str:
    """One line of text with every secret value it holds replaced by MASK (its key, user, scheme kept)."""
    body, nl = (line[:-1], "\n") if line.endswith("\n") else (line, "")
    if _PAM.match(body) or _NSSWITCH.match(body):
        return line
    body = _ENV_QUOTED.sub(lambda m: _keep(m, 2, 3, m.group(1) + MASK + m.group(4)), body)
    body = _assign(body)
    body = _NETRC.sub(lambda m: m.group(1) + MASK, body)
    body = _QUOTED_KEY.sub(lambda m: _keep(m, 3, 4, m.group(1) + _quoted_mask(m.group(4))), body)
    body = _ENV.sub(lambda m: _keep(m, 2, 3, m.group(1) + MASK), body)
    body = _FLAG.sub(lambda m: _keep(m, 2, 4, m.group(1) + m.group(3) + MASK), body)
    body = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), body)
    body = _AUTH_HEADER.sub(lambda m: m.group(0) if m.group(2).startswith(MASK) else m.group(1) + MASK, body)
    body = _BEARER.sub(lambda m: m.group(1) + MASK, body)
    body = _CRYPT.sub(MASK, body)
    return _TOKENS.sub(MASK, body) + nl


def redact_lines(lines: Sequence[str]) -> list[str]:
    return [redact_line(x) for x in lines]


def redact_text(text: str) -> str:
    """Free text (a message, a diff's side): private key blocks collapsed, then every line redacted."""
    text = _PEM_BLOCK.sub(lambda m: f"{m.group(1)}\n{MASK}\n{m.group(2)}", text)
    return "".join(redact_lines(text.splitlines(keepends=True)))


def redact_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """A process command line: values of secret-named flags, known password flags and secret shapes masked."""
    prog = os.path.basename(argv[0]) if argv else ""
    out = list(argv)
    for i, arg in enumerate(argv):
        if i > 0 and _takes_secret(prog, argv[i - 1]) and not arg.startswith("-"):
            out[i] = _user_kept(arg) if argv[i - 1] in ("-u", "--user", "-U", "--proxy-user") else MASK
        elif prog in _ATTACHED and arg.startswith(_ATTACHED[prog]) and len(arg) > 2 and not arg.startswith("--"):
            out[i] = _ATTACHED[prog] + MASK
        elif " " in arg:
            out[i] = redact_cmdline(arg)  # `sh -c "..."`, or a process that rewrote its argv (sshd: ...)
        else:
            out[i] = redact_line(arg)
    return tuple(out)


def redact_cmdline(cmdline: str) -> str:
    return " ".join(redact_argv(cmdline.split(" ")))


def _takes_secret(prog: str, flag: str) -> bool:
    if flag in _NEXT.get(prog, ()):
        return True
    m = re.fullmatch(r"(?i)--?(" + _KEY + ")", flag)
    return m is not None and not _NOT_SECRET_KEY.search(m.group(1))


def _user_kept(userpass: str) -> str:
    user, sep, _ = userpass.partition(":")
    return f"{user}:{MASK}" if sep else userpass


def _assign(body: str) -> str:
    m = _ASSIGN.match(body)
    if not m or _NOT_SECRET_KEY.search(m.group(2)) or _NOT_SECRET_VALUE.search(m.group(3)):
        return body
    if m.group(3).startswith(MASK):
        return body
    return m.group(1) + MASK + m.group(4)


def _keep(m: re.Match[str], key: int, value: int, replaced: str) -> str:
    """The replacement, unless the key only looks secret (`password_file`) or the value is none (`no`, `{{ x }}`)."""
    v = m.group(value)
    if _NOT_SECRET_KEY.search(m.group(key)) or _NOT_SECRET_VALUE.search(v) or MASK in v:
        return m.group(0)
    return replaced


def _quoted_mask(value: str) -> str:
    return f"{value[0]}{MASK}{value[0]}" if value[:1] in ("'", '"') else MASK


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_terminal(text: str) -> str:
    """Target-provided text made safe to print: every control character except newline and tab (ESC and so
    every CSI/OSC sequence, C1 controls, CR, backspace, bidi overrides) shown as a visible escape instead."""
    return _CONTROL.sub(_visible, text)


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
