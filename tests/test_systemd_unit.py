"""deploy/mocd.service: systemd accepts it as it is, and it keeps its hardening.

``systemd-analyze verify`` checks that every command of a unit exists, and the unit
names /opt/mocd/bin/mocd, where the README installs mocd and which a checkout does not
have. So the tests verify a copy whose ExecStart=/ExecReload= run this checkout's
``mocd`` (next to the Python running the tests) and nothing else changed; its output
must be empty: systemd reports an unknown key or a bad specifier on stderr and still
exits 0. Without ``systemd-analyze`` (not a systemd host) those tests skip, loudly.

What the hardening allows was checked by running the daemon under this unit (systemd
252, Debian 12's ``python3.11``): see the comments in the unit file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "mocd.service"
INSTALLED = "/opt/mocd/bin/mocd"
MOCD = Path(sys.executable).parent / "mocd"
# `systemd-analyze security` of the unit with systemd 252 (it was 1.8 before issue 11).
EXPOSURE = 1.1


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment, in order (keys repeat: no configparser)."""
    found: list[tuple[str, str, str]] = []
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in directives(UNIT.read_text(encoding="utf-8"))
            if (s, k) == (section, key)]


def value(key: str, section: str = "Service") -> str:
    found = values(key, section)
    assert len(found) == 1, f"{key}= given {len(found)} times in [{section}]"
    return found[0]


@pytest.fixture
def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("SYSTEMD-ANALYZE NOT FOUND: deploy/mocd.service is NOT VERIFIED "
                    "(install systemd, e.g. apt-get install systemd)")
    return tool


def runnable_copy(directory: Path, text: str | None = None) -> Path:
    """The unit with its commands pointing at this checkout's mocd (see the module doc)."""
    assert MOCD.is_file(), f"{MOCD} missing: run `make install`"
    text = UNIT.read_text(encoding="utf-8") if text is None else text
    assert text.count(INSTALLED) == 2  # ExecStart= and ExecReload=, nothing else
    copy = directory / "mocd.service"  # the name matters: %n, the credentials directory
    copy.write_text(text.replace(INSTALLED, str(MOCD)), encoding="utf-8")
    return copy


def verify(analyze: str, unit: Path) -> tuple[int, str]:
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def test_systemd_analyze_verify_is_clean(analyze: str, tmp_path: Path) -> None:
    assert verify(analyze, runnable_copy(tmp_path)) == (0, "")


def test_verify_would_say_so_if_a_key_were_wrong(analyze: str, tmp_path: Path) -> None:
    """The clean output above means something: a typo is reported (and still exits 0)."""
    text = UNIT.read_text(encoding="utf-8").replace("ProtectProc=", "ProtectProcc=")
    code, output = verify(analyze, runnable_copy(tmp_path, text))
    assert code == 0
    assert "Unknown key 'ProtectProcc' in section [Service]" in output


def test_the_security_exposure_stays_low(analyze: str, tmp_path: Path) -> None:
    done = subprocess.run([analyze, "security", "--offline=yes", str(runnable_copy(tmp_path))],
                          capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for mocd\.service: (\d+\.\d)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= EXPOSURE, done.stdout


def test_the_unit_keeps_its_hardening() -> None:
    expected = {
        "Type": "notify", "NotifyAccess": "main",
        # resources (the reasons are in the unit's comments)
        "MemoryHigh": "1G", "MemoryMax": "1536M", "LimitNOFILE": "65536", "TasksMax": "256",
        # identity and files
        "DynamicUser": "yes", "StateDirectory": "mocd", "StateDirectoryMode": "0700",
        "ConfigurationDirectory": "mocd", "UMask": "0077", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "PrivateMounts": "yes", "PrivateUsers": "yes",
        "ProtectProc": "invisible", "ProcSubset": "pid",
        # the kernel
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
        "ProtectHostname": "yes",
        # privileges and system calls
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
        "SystemCallErrorNumber": "EPERM",
        # the SMTP password: a credential, not the world-readable settings file
        "LoadCredential": "smtp-password:/etc/mocd/smtp-password",
    }
    assert {key: value(key) for key in expected} == expected
    assert values("SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert "MOCD_MAIL__PASSWORD_FILE=%d/smtp-password" in values("Environment")
    assert "MOCD_STATE_DIR=/var/lib/mocd" in values("Environment")
    assert "time-sync.target" in value("After", "Unit").split()
    for key in ("AmbientCapabilities", "User", "SupplementaryGroups"):
        assert values(key) == [], f"{key}= would give the daemon more than it needs"
