"""`local_broker.jit`: the brokers tests start by the hundred compile with C1 only; a long-running one gets the JVM's
whole JIT (examples/mailgate.yaml, so the README's run-gateway)."""
from pathlib import Path

from mailgate.core.config import load_config, parse_config
from mailgate.ops.kafka.local_broker import _paths, server_command

ROOT = Path(__file__).resolve().parents[2]
C1_ONLY = "-XX:TieredStopAtLevel=1"


def command(jit: str | None, tmp_path: Path) -> list[str]:
    lb = {"home": str(tmp_path / "broker")} | ({"jit": jit} if jit else {})
    cfg = parse_config({"kafka": {"bootstrap_servers": ["127.0.0.1:9092"]}, "local_broker": lb})
    return server_command(tmp_path / "libs", cfg.local_broker, _paths(cfg.local_broker))


def test_a_broker_compiles_with_c1_only_unless_told_otherwise(tmp_path):
    assert C1_ONLY in command(None, tmp_path)
    assert C1_ONLY in command("quick_start", tmp_path)


def test_jit_full_leaves_the_jvm_its_whole_jit(tmp_path):
    cmd = command("full", tmp_path)
    assert C1_ONLY not in cmd
    assert cmd[0] == "java" and cmd[-2:] == ["kafka.Kafka", str((tmp_path / "broker" / "server.properties").resolve())]


def test_the_sample_configuration_runs_a_long_lived_broker():
    assert load_config(ROOT / "examples" / "mailgate.yaml").local_broker.jit == "full"
