"""Every path safeapply uses on a managed host, named once. Controller code imports them from here.

    /var/lib/safeapply/                    BASE: what safeapply keeps on a host (root only)
        target/<version>.pyz               this package, one zip per version (INSTALL_DIR)
        bin/safeapply-restore.py           restores the host to a snapshot kept here, without the controller
        host-snapshots/{manifests,packs}/  the on-target copy of this host's snapshots (newest 20); not
                                           `snapshots/`: that is the controller's store when a root
                                           controller (default state dir: this BASE) is its own target
        restores/                          a record of every restore done on the host; journal.json while
                                           one is in progress (left behind: interrupted, half-restored)
        deadman/<run>/                     an armed dead-man's switch: config, saved firewall, fired.json;
                                           fence once it fired (the run's modules refuse to start)
    ~/.cache/safeapply/target/             the package for a login that cannot become root (scan only)
    /run/safeapply/lock/                   the per-host run lock (a tmpfs: a reboot clears it)
    /usr/local/lib/systemd/system/         the switch's timer and service (not /etc: a restore of /etc would
                                           delete them)

The snapshot program takes its base as `--base` (tests use a temporary one); everything else is fixed.
"""

import os

BASE = "/var/lib/safeapply"
INSTALL_DIR = BASE + "/target"
USER_INSTALL_DIR = "~/.cache/safeapply/target"
DEADMAN_DIR = BASE + "/deadman"
FENCE = "fence"  # DEADMAN_DIR/<run>/fence: the run's switch fired; its Ansible's module commands refuse to start


def fence_path(run: str) -> str:
    return DEADMAN_DIR + "/" + run + "/" + FENCE
LOCK = "/run/safeapply/lock"
UNIT_DIR = "/usr/local/lib/systemd/system"
TIMERS_WANTS = UNIT_DIR + "/timers.target.wants"
TIMER_STAMPS = "/var/lib/systemd/timers"
RESTORE_PROGRAM = "bin/safeapply-restore.py"  # under a base
RESTORE_JOURNAL = "restores/journal.json"  # under a base: a restore in progress (or interrupted)
HOST_SNAPSHOTS = b"host-snapshots"  # never the controller's `snapshots/` (see above)
TMP_PREFIX = ".safeapply-"  # every temp file safeapply leaves beside its final name, until the rename


def install_dir(as_root: bool) -> str:
    """Where the package is installed for calls run as root, or as the login user ('~' is the host's)."""
    return INSTALL_DIR if as_root else USER_INSTALL_DIR


def snapshots(base: bytes) -> bytes:
    return os.path.join(base, HOST_SNAPSHOTS)


def manifests(base: bytes) -> bytes:
    return os.path.join(base, HOST_SNAPSHOTS, b"manifests")


def packs(base: bytes) -> bytes:
    return os.path.join(base, HOST_SNAPSHOTS, b"packs")


def restores(base: bytes) -> bytes:
    return os.path.join(base, b"restores")


def deadman_dir(base: bytes) -> bytes:
    """The switch's state under a snapshot base (the snapshot program must not prune what it restores from)."""
    return os.path.join(base, b"deadman")


def installed_at() -> str:
    """The sys.path entry this package runs from: BASE/target/<version>.pyz on a host."""
    here = os.path.dirname(os.path.abspath(__file__))  # .../safeapply/target
    return os.path.dirname(os.path.dirname(here))
