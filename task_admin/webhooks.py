"""Webhooks: which URLs staff may make the server call, and a signed POST to one.

A URL typed in the admin makes the server send requests, so:
- the destination must match ``TASK_ADMIN["ALERT_WEBHOOK_ALLOWED"]`` (hosts, https on port 443,
  or URL prefixes), compared on the parsed and normalised URL, never on the text;
- https only, unless an allowed prefix itself says ``http://``;
- the host is resolved once, every address it resolves to is checked (no loopback, private,
  link-local or reserved address unless the allowed entry names that very IP address), and the
  connection goes to the address that was checked, so DNS cannot change the answer in between;
- redirects are never followed, and connecting and reading each time out after
  ``ALERT_WEBHOOK_TIMEOUT`` seconds.

Standard library only (``http.client``): nothing to install, and nothing that follows redirects
behind our back.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.utils.translation import gettext as _

SIGNATURE_HEADER = "X-Task-Admin-Signature"
TIMESTAMP_HEADER = "X-Task-Admin-Timestamp"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookRefused(Exception):
    """The URL may not be called (or the receiver refused for good); retrying will not help."""


class WebhookFailed(Exception):
    """The call failed in a way worth retrying: network error, timeout, 5xx, 408 or 429."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case, no trailing dot; an IP address in its canonical form
    port: int
    path: str  # with the query, as sent in the request line
    is_ip: bool

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" + ("" if default else f":{self.port}")


def parse(url: str) -> Target:
    """The URL's parts, normalised; raises WebhookRefused for anything ambiguous."""
    if not isinstance(url, str) or not url or any(c in url for c in "\\ \t\r\n\x00") or (
        not url.isascii()
    ):
        raise WebhookRefused(_("The URL must be plain ASCII with no spaces or backslashes."))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise WebhookRefused(_("The URL must start with https:// (or http:// where allowed)."))
    if "@" in parts.netloc:
        raise WebhookRefused(_("The URL must not contain a user name or password."))
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise WebhookRefused(_("The URL's port is not a number between 0 and 65535.")) from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookRefused(_("The URL has no host."))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        if not _HOSTNAME.match(host) or _looks_numeric(host):
            raise WebhookRefused(
                _("“%(host)s” is not a host name; write IP addresses in their usual form.")
                % {"host": host}
            )
    else:
        host = str(address)
    path = parts.path or "/"
    decoded = unquote(path)
    if "%2f" in path.lower() or "%5c" in path.lower() or any(
        segment in (".", "..") for segment in decoded.split("/")
    ):
        raise WebhookRefused(_("The URL's path must not contain “.”, “..” or encoded slashes."))
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port, path, address is not None)


def _looks_numeric(host: str) -> bool:
    """Hosts like ``2130706433`` or ``0x7f.1`` that resolvers read as IPv4 addresses."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Allowed:
    scheme: str
    host: str
    port: int
    path: str
    is_ip: bool

    def matches(self, target: Target) -> bool:
        if (target.scheme, target.host, target.port) != (self.scheme, self.host, self.port):
            return False
        if self.path.endswith("/"):
            return target.path.startswith(self.path)
        return target.path == self.path or target.path.startswith(
            (self.path + "/", self.path + "?")
        )


def allowed_entry(entry: str) -> Allowed:
    """One entry of the setting: a host (``hooks.example.com[:port]``, https) or a URL prefix."""
    text = entry.strip()
    if "://" not in text:
        text = f"https://{text}/"
    target = parse(text)
    return Allowed(target.scheme, target.host, target.port, target.path, target.is_ip)


def check_allowed(url: str, entries: Iterable[str]) -> tuple[Target, Allowed]:
    """The URL and the entry that allows it; raises WebhookRefused (with the reason) if none."""
    target = parse(url)
    for entry in entries:
        allowed = allowed_entry(entry)
        if allowed.matches(target):
            return target, allowed
    if target.scheme == "http" and any(
        allowed_entry(e).matches(Target("https", target.host, target.port if target.port != 80
                                        else 443, target.path, target.is_ip))
        for e in entries
    ):
        raise WebhookRefused(_("Use https:// for this destination."))
    raise WebhookRefused(
        _("Webhooks to %(origin)s are not allowed here (TASK_ADMIN “ALERT_WEBHOOK_ALLOWED”).")
        % {"origin": target.origin}
    )


def _checked_address(target: Target, allowed: Allowed) -> str:
    """Resolve the host once; every address must be one the server may talk to."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookFailed(
            _("Cannot resolve %(host)s: %(error)s") % {"host": target.host, "error": exc}
        ) from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        # An entry naming an IP address allows exactly that address, private or not.
        ok = str(address) == allowed.host if allowed.is_ip else address.is_global
        if not ok:
            raise WebhookRefused(
                _("%(host)s resolves to %(address)s, an address webhooks may not reach.")
                % {"host": target.host, "address": address}
            )
        addresses.append(str(address))
    if not addresses:
        raise WebhookFailed(_("Cannot resolve %(host)s.") % {"host": target.host})
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever DNS says now."""

    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Certificates are checked against the host name in the URL.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` with the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def post(
    url: str,
    body: bytes,
    *,
    secret: str,
    allowed: Iterable[str],
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> int:
    """POST the signed JSON body; returns the 2xx status, raises WebhookRefused/WebhookFailed."""
    allowed = list(allowed)
    target, entry = check_allowed(url, allowed)
    address = _checked_address(target, entry)
    timestamp = str(int(time.time()))
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": "task_admin-alerts",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        **(headers or {}),
    }
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = cls(target.host, target.port, address=address, timeout=timeout)
    try:
        connection.request("POST", target.path, body=body, headers=all_headers)
        response = connection.getresponse()
        status = response.status
        snippet = response.read(300).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        raise WebhookFailed(
            _("%(origin)s could not be reached: %(error)s")
            % {"origin": target.origin, "error": exc or type(exc).__name__}
        ) from exc
    finally:
        connection.close()
    if 200 <= status < 300:
        return status
    message = _("%(origin)s answered %(status)s %(text)s") % {
        "origin": target.origin, "status": status, "text": snippet[:200],
    }
    if 300 <= status < 400:
        raise WebhookRefused(message + " " + _("(redirects are not followed)"))
    if status >= 500 or status in (408, 429):
        raise WebhookFailed(message)
    raise WebhookRefused(message)
