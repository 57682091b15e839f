"""mailgate.mail.directory.live: what a configuration change replaced (a directory, the old version's policies) is
closed only after the work that began before the change had its time (a SmarterMail domain list too), and the
mapping stays the same object."""
import asyncio

from mailgate.core.config import parse_config
from mailgate.mail.directory import live
from mailgate.mail.directory.cache import CachedDirectory
from mailgate.mail.directory.live import LiveDirectories


class _Directory:
    closed = False

    async def exists(self, address: str) -> bool:
        return True

    async def aclose(self) -> None:
        self.closed = True


async def test_a_replaced_directory_and_the_old_versions_resources_close_after_the_retirement_delay(monkeypatch):
    monkeypatch.setattr(live, "RETIRE_AFTER_S", 0.05)
    gws = parse_config({"inbound_gateways": [
        {"name": "a", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "smtp_user_verification": True},
        {"name": "b", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "smtp_user_verification": True},
    ]}).inbound_gateways
    kept, replaced, domain_list = _Directory(), _Directory(), _Directory()
    mapping = {"a": CachedDirectory(kept), "b": CachedDirectory(replaced)}
    directories = LiveDirectories(gws, mapping, {"b": domain_list})  # b's domain list: not web_service any more
    closed_policies: list[str] = []

    async def close_policies() -> None:
        closed_policies.append("old version")

    directories.reconfigure([gws[0], gws[1].model_copy(update={"primary_port": 2526})], also_close=[close_policies])
    assert directories.mapping is mapping and mapping["b"].directory is not replaced
    await asyncio.sleep(0.01)
    assert not replaced.closed and not domain_list.closed and closed_policies == []  # work begun before may use them
    assert directories.domain_lists == {}
    await asyncio.sleep(0.1)
    assert replaced.closed and domain_list.closed and closed_policies == ["old version"] and not kept.closed
    await directories.aclose()
