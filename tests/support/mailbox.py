"""An email backend that records what worker processes send, where the tests can read it.

It is Django's locmem backend (so ``mail.outbox`` works in the test process too) that also
writes each message as a JSON file in ``settings.TEST_MAIL_DIR``. A file named ``fail-next``
in that directory makes the next send fail like an SMTP server that hung up (to test retries).
"""

from __future__ import annotations

import json
import os
import smtplib
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends import locmem


def mail_dir() -> Path:
    path = Path(settings.TEST_MAIL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


class RecordingBackend(locmem.EmailBackend):
    def send_messages(self, messages):
        trap = mail_dir() / "fail-next"
        try:
            trap.unlink()
        except FileNotFoundError:
            pass
        else:
            raise smtplib.SMTPServerDisconnected("test: the SMTP server hung up")
        sent = super().send_messages(messages)
        for message in messages:
            record = {
                "subject": message.subject,
                "from": message.from_email,
                "to": list(message.to),
                "body": message.body,
                "html": [body for body, kind in getattr(message, "alternatives", [])
                         if kind == "text/html"],
                "pid": os.getpid(),
            }
            name = f"{time.time_ns()}-{uuid.uuid4().hex}.json"
            tmp = mail_dir() / f"{name}.part"  # not *.json: pathlib's glob matches dot files
            tmp.write_text(json.dumps(record))
            tmp.rename(mail_dir() / name)  # readers never see half a file
        return sent


def read_mail() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(mail_dir().glob("*.json"))]


def clear_mail() -> None:
    for path in mail_dir().iterdir():
        path.unlink()
