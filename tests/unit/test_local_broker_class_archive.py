"""The local broker's class-data-sharing archive: written by the first broker of these jars, used by the next ones,
and never used half-written (a start maps it instead of loading the jars' classes: about half the CPU to ready)."""
import shutil
from pathlib import Path

import pytest

from mailgate.ops.kafka import local_broker as lb

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH")


def _home(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    libs = tmp_path / "kafka-libs"
    libs.mkdir()
    (libs / "kafka_2.13-3.9.1.jar").write_bytes(b"")
    home = tmp_path / "broker"
    home.mkdir()
    return libs, {"home": home}


def test_the_first_broker_writes_the_archive_and_the_next_one_maps_it(tmp_path):
    libs, p = _home(tmp_path)
    first = lb._class_archive(libs, p)
    pending = Path(first[0].split("=", 1)[1])
    assert first[0].startswith("-XX:ArchiveClassesAtExit=") and pending.parent == libs.parent
    pending.write_bytes(b"archive")  # what the JVM writes as it exits
    lb._settle_class_archive(p, complete=True)
    second = lb._class_archive(libs, p)
    assert second[0].startswith("-XX:SharedArchiveFile=")
    assert Path(second[0].split("=", 1)[1]).read_bytes() == b"archive"
    assert not pending.exists()


def test_a_killed_brokers_half_written_archive_is_deleted_not_used(tmp_path):
    libs, p = _home(tmp_path)
    pending = Path(lb._class_archive(libs, p)[0].split("=", 1)[1])
    pending.write_bytes(b"half")
    lb._settle_class_archive(p, complete=False)
    assert not pending.exists()
    assert lb._class_archive(libs, p)[0].startswith("-XX:ArchiveClassesAtExit=")


def test_other_jars_get_their_own_archive(tmp_path):
    libs, p = _home(tmp_path)
    pending = Path(lb._class_archive(libs, p)[0].split("=", 1)[1])
    pending.write_bytes(b"archive")
    lb._settle_class_archive(p, complete=True)
    (libs / "kafka-clients-3.9.1.jar").write_bytes(b"")
    assert lb._class_archive(libs, p)[0].startswith("-XX:ArchiveClassesAtExit=")
