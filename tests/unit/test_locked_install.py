"""Reproducible installs: what is installed is what constraints.txt (written by scripts/lock) pins, so a fresh clone
runs against the versions the suite last passed with, not whatever a registry offers that day."""
from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)")


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if (m := PIN.match(line.strip())) is not None:
            out[m.group(1).split("[")[0]] = m.group(2)
    return out


def test_every_installed_package_of_the_lock_has_its_locked_version():
    locked = pins()
    assert len(locked) > 50
    wrong = []
    for name, want in sorted(locked.items()):
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        if have != want:
            wrong.append(f"{name}: {have}, locked {want}")
    assert wrong == [], "run ./scripts/install (or ./scripts/lock to take new versions): " + "; ".join(wrong)


def test_the_lock_pins_the_libraries_whose_internals_we_use_within_their_bounds():
    locked = pins()
    for name in ("aiosmtpd", "aiokafka", "aiosmtplib", "faust-streaming", "fastavro", "httpx", "cachetools"):
        assert name in locked, name
    text = (ROOT / "pyproject.toml").read_text()
    for bounded in ('"aiosmtpd>=1.4.6,<1.5"', '"aiokafka>=0.14,<0.15"', '"aiosmtplib>=5.1.2,<5.2"'):
        assert bounded in text
