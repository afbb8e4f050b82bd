"""``task_admin.conf``: the ``TASK_ADMIN`` settings dict and its defaults."""

from django.test import override_settings

from task_admin.conf import get_config


def test_settings_are_read_lazily():
    assert get_config()["MAX_DEPTH"] == 20
    with override_settings(TASK_ADMIN={"MAX_DEPTH": 3}):
        assert get_config()["MAX_DEPTH"] == 3
    assert get_config()["MAX_DEPTH"] == 20
