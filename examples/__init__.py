"""Example task bodies shared by the demo project and the tests' own app (``tasks.py``)."""
