"""Which webhook URLs the server may call: the allowed list is matched on the parsed URL, so no
way of writing a URL reaches an address the setting does not allow."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import socket
import threading

import pytest

from task_admin import webhooks

ALLOWED = [
    "hooks.example.com",
    "https://chat.example.org/api/hooks/",
    "http://10.0.0.5:8080/in",
]


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/anything?x=1",
    "https://HOOKS.Example.com./x",
    "https://hooks.example.com:443/x",
    "https://chat.example.org/api/hooks/abc",
    "http://10.0.0.5:8080/in",
    "http://10.0.0.5:8080/in/sub",
    "http://10.0.0.5:8080/in?token=1",
])
def test_allowed(url):
    webhooks.check_allowed(url, ALLOWED)


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/x",                      # https only for a host entry
    "https://hooks.example.com:8443/x",                # another port
    "https://evil.example.com/x",
    "https://hooks.example.com.evil.com/x",
    "https://hooks.example.com@evil.com/x",            # userinfo: the host is evil.com
    "https://evil.com#@hooks.example.com/",
    "https://evil.com\\@hooks.example.com/",
    "https://chat.example.org/api/other",              # outside the prefix
    "https://chat.example.org/api/hooks/../admin",     # dot segments
    "https://chat.example.org/api/hooks/%2e%2e/admin",
    "https://chat.example.org/api/hooks/..%2fadmin",
    "http://10.0.0.5:8080/inside",                     # not under /in
    "http://10.0.0.5:8081/in",
    "https://10.0.0.5:8080/in",                        # the entry allows http only
    "http://167772165:8080/in",                        # 10.0.0.5 written as one number
    "http://0xa.0.0.5:8080/in",
    "http://[::ffff:10.0.0.5]:8080/in",
    "ftp://hooks.example.com/x",
    "file:///etc/passwd",
    "https://hooks.example.com/x y",
    "https://hooks.exämple.com/x",
    "https:///x",
    "https://hooks.example.com:99999/x",
])
def test_refused(url):
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_allowed(url, ALLOWED)


def test_nothing_is_allowed_by_default():
    with pytest.raises(webhooks.WebhookRefused, match="not allowed"):
        webhooks.check_allowed("https://hooks.example.com/", [])


def test_a_host_name_resolving_to_a_private_address_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443)),
    ])
    connected = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    with pytest.raises(webhooks.WebhookRefused, match=r"127\.0\.0\.1"):
        webhooks.post("https://hooks.example.com/x", b"{}", secret="s" * 16,
                      allowed=ALLOWED, timeout=1)
    assert connected == []


class _Recorder(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, dict]] = []
    seen: list[tuple[str, dict, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, dict(self.headers), body))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.answers, _Recorder.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Recorder
    server.shutdown()
    server.server_close()


def test_post_signs_the_body_and_follows_no_redirect(receiver):
    port, recorder = receiver
    allowed = [f"http://127.0.0.1:{port}/hooks/"]
    status = webhooks.post(f"http://127.0.0.1:{port}/hooks/a", b'{"a": 1}',
                           secret="k" * 16, allowed=allowed, timeout=2)
    assert status == 200
    path, headers, body = recorder.seen[0]
    assert (path, body) == ("/hooks/a", b'{"a": 1}')
    expected = hmac.new(b"k" * 16, headers["X-Task-Admin-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert headers["X-Task-Admin-Signature"] == f"sha256={expected}"

    recorder.answers.append((302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(webhooks.WebhookRefused, match="redirects are not followed"):
        webhooks.post(f"http://127.0.0.1:{port}/hooks/a", b"{}", secret="k" * 16,
                      allowed=allowed, timeout=2)
    assert len(recorder.seen) == 2  # the redirect's target was never asked

    recorder.answers.append((500, {}))
    with pytest.raises(webhooks.WebhookFailed):
        webhooks.post(f"http://127.0.0.1:{port}/hooks/a", b"{}", secret="k" * 16,
                      allowed=allowed, timeout=2)
    recorder.answers.append((404, {}))
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.post(f"http://127.0.0.1:{port}/hooks/a", b"{}", secret="k" * 16,
                      allowed=allowed, timeout=2)


def test_an_unreachable_receiver_is_worth_a_retry():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once we leave: nothing listens there
    with pytest.raises(webhooks.WebhookFailed):
        webhooks.post(f"http://127.0.0.1:{port}/hooks/", b"{}", secret="k" * 16,
                      allowed=[f"http://127.0.0.1:{port}/hooks/"], timeout=1)
