"""The Ansible facts a playbook's include names and `when:` commonly need, derived from a host's scan.

Names follow Ansible's own facts: `distribution` as `ansible.module_utils.common.sys_info.get_distribution`
spells the os-release ID (matched against Ansible's distribution table), `os_family` from Ansible's own
`Distribution.OS_FAMILY` table, `service_mgr` from the init the scan saw. What the scan does not tell
(architecture, for one) is left out: a name that needs it stays unresolved, never guessed.
"""

from __future__ import annotations

from typing import Any

from safeapply.probe.model import Facts

# the package manager Ansible's pkg_mgr fact finds on a standard install of each family
_PKG_MGR = {"Debian": "apt", "Suse": "zypper", "Archlinux": "pacman", "Alpine": "apk", "Gentoo": "portage"}

# os-release IDs whose Ansible name is not the ID capitalised nor a name of Ansible's distribution table
_ID_NAMES = {"rhel": "RedHat", "amzn": "Amazon", "arch": "Archlinux", "ol": "OracleLinux", "sles": "SLES",
             "opensuse-leap": "openSUSE Leap", "opensuse-tumbleweed": "openSUSE Tumbleweed",
             "linuxmint": "Linux Mint", "pop": "Pop!_OS"}


def distribution(os_id: str) -> str:
    """os-release ID -> Ansible's `ansible_distribution` (debian -> Debian, centos -> CentOS, rhel -> RedHat)."""
    from ansible.module_utils.facts.system.distribution import Distribution

    if os_id.lower() in _ID_NAMES:
        return _ID_NAMES[os_id.lower()]
    known = {k.lower().replace(" ", ""): k for k in Distribution.OS_FAMILY}
    return str(known.get(os_id.lower().replace(" ", ""), os_id.capitalize() or "OtherLinux"))


def ansible_facts(f: Facts) -> dict[str, Any]:
    """`ansible_facts` keys (without the `ansible_` prefix) the scan can answer exactly."""
    from ansible.module_utils.facts.system.distribution import Distribution

    out: dict[str, Any] = {"system": "Linux"}
    if f.os_id:
        dist = distribution(f.os_id)
        family = Distribution.OS_FAMILY.get(dist) or dist
        out |= {"distribution": dist, "os_family": family}
        if family in _PKG_MGR:
            out["pkg_mgr"] = _PKG_MGR[family]
        elif family == "RedHat" and f.os_version:
            out["pkg_mgr"] = "dnf" if int(f.os_version.split(".")[0] or 0) >= 8 or dist == "Fedora" else "yum"
    if f.os_version:
        out |= {"distribution_version": f.os_version, "distribution_major_version": f.os_version.split(".")[0]}
    if f.init:
        out["service_mgr"] = f.init
    if f.hostname:
        out |= {"hostname": f.hostname.split(".")[0], "nodename": f.hostname, "fqdn": f.hostname}
    if f.kernel:
        out["kernel"] = f.kernel
    return out


def as_variables(f: Facts) -> dict[str, Any]:
    """As a play sees gathered facts: `ansible_facts.<name>` and (INJECT_FACTS_AS_VARS) `ansible_<name>`."""
    facts = ansible_facts(f)
    return {"ansible_facts": facts, **{f"ansible_{k}": v for k, v in facts.items()}}
