"""With TASK_ADMIN_TEST_BROKER=rabbitmq, run the tests on RabbitMQ in a vhost of their own.

Loaded early with ``-p tests.support.rabbitmq_plugin`` (see setup.cfg), like the Redis plugin:
creates a vhost ``ta-<random>`` on the RabbitMQ at TASK_ADMIN_RABBITMQ_URL (default
amqp://guest:guest@127.0.0.1:5672/) with ``rabbitmqctl`` (or the management API on port 15672
when rabbitmqctl is not there), points TASK_ADMIN_TEST_BROKER_URL at it for the settings and
the worker processes, and deletes it at the end, so parallel runs never share a queue. Redis
stays the result store of the tests' own checks.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

_key = pytest.StashKey()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _management(method: str, path: str, body: dict | None, server: urllib.parse.ParseResult):
    url = f"http://{server.hostname}:15672/api/{path}"
    auth = base64.b64encode(
        f"{server.username or 'guest'}:{server.password or 'guest'}".encode()
    ).decode()
    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def create_vhost(server: urllib.parse.ParseResult, vhost: str) -> None:
    user = server.username or "guest"
    if shutil.which("rabbitmqctl"):
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return
    quoted = urllib.parse.quote(vhost, safe="")
    _management("PUT", f"vhosts/{quoted}", None, server)
    _management("PUT", f"permissions/{quoted}/{user}",
                {"configure": ".*", "write": ".*", "read": ".*"}, server)


def delete_vhost(server: urllib.parse.ParseResult, vhost: str) -> None:
    if shutil.which("rabbitmqctl"):
        _rabbitmqctl("delete_vhost", vhost)
    else:
        _management("DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}", None, server)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if os.environ.get("TASK_ADMIN_TEST_BROKER") != "rabbitmq":
        return
    if os.environ.get("TASK_ADMIN_TEST_BROKER_URL"):
        return  # a parent test process already made the vhost
    base = os.environ.get("TASK_ADMIN_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    server = urllib.parse.urlparse(base)
    vhost = f"ta-{secrets.token_hex(6)}"
    create_vhost(server, vhost)
    url = urllib.parse.urlunparse(server._replace(path="/" + vhost))
    os.environ["TASK_ADMIN_TEST_BROKER_URL"] = url
    early_config.stash[_key] = (server, vhost)
    print(f"task_admin tests: RabbitMQ broker, vhost {vhost}", file=sys.stderr)


def pytest_unconfigure(config):
    found = config.stash.get(_key, None)
    if found is None:
        return
    server, vhost = found
    try:
        delete_vhost(server, vhost)
    finally:
        os.environ.pop("TASK_ADMIN_TEST_BROKER_URL", None)
