"""``make demo`` (project/launch.py): the commands it runs take what it generates."""

from __future__ import annotations

import pytest

from project import launch
from project.demo.management.commands.demo_admin import Command as DemoAdmin


@pytest.mark.parametrize("password", ["-tBaSI8kaHOF", "--x", "plain", "a b"])
def test_the_demo_admin_gets_any_generated_password(password):
    # token_urlsafe() starts with "-" one time in 64: the demo then failed to start (seen in CI).
    parser = DemoAdmin().create_parser("manage.py", "demo_admin")
    options = parser.parse_args(launch.admin_arguments(password))
    assert (options.username, options.password) == ("admin", password)
