"""The one module that makes outbound HTTP requests (webhooks now, Telegram later). STYLE: "one seam".

Every request:
- has a hard time budget that covers DNS, connecting, TLS, every redirect hop and reading the body;
- resolves the host itself and refuses loopback, private, link-local, shared, reserved, multicast and
  unspecified addresses (IPv4 and IPv6, including IPv4 addresses embedded in IPv6 ones), unless the host
  is in `HITL_EGRESS_ALLOWED_HOSTS` (SSRF: a webhook URL must not reach the metadata service or the
  database on the internal network);
- then connects to the very address it checked (TLS still verifies the certificate for the host name),
  so a DNS answer that changes between the check and the connect (DNS rebinding) cannot sneak past;
- follows redirects itself, a few at most, checking every hop the same way;
- requires HTTPS unless `DEBUG` is on or the host is allow-listed.

Callers get a `Response` (status, headers, the first bytes of the body) or one exception type,
`EgressError`, whose `retryable` says whether trying again later may help.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 3
MAX_BODY = 64 * 1024
USER_AGENT = "hitl-server/0.1"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressError(Exception):
    """The request failed. `detail` is safe to show ops staff; `retryable` is False when trying the
    same request again cannot help (refused address, bad URL)."""

    def __init__(self, detail: str, *, retryable: bool = True):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


class EgressRefused(EgressError):
    """The URL is not allowed: its address is not public, or it is plain HTTP outside DEBUG."""

    def __init__(self, detail: str):
        super().__init__(detail, retryable=False)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes  # at most `max_body` bytes
    url: str  # the URL that answered, after redirects
    elapsed: float  # seconds, for the whole exchange

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def excerpt(self, limit: int = 1000) -> str:
        return self.body[:limit].decode("utf-8", errors="replace")


# --- address checks ----------------------------------------------------------------------------------


def is_public(ip: IPAddress) -> bool:
    """True when `ip` is a global unicast address, and so is any IPv4 address it stands for."""
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address itself: judge that.
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        # 6to4 and Teredo addresses are global, but must not smuggle a private IPv4 address either.
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public(embedded):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _allow_list() -> list[str]:
    return [entry.strip().lower().strip("[]") for entry in settings.HITL_EGRESS_ALLOWED_HOSTS if entry.strip()]


def is_allowed_host(host: str) -> bool:
    """The host (a name or an address literal, or an address inside an allow-listed network such as
    10.0.0.0/8) is in HITL_EGRESS_ALLOWED_HOSTS."""
    host = host.lower().strip("[]").rstrip(".")
    literal = _ip_or_none(host)
    for entry in _allow_list():
        if entry.rstrip(".") == host:
            return True
        if literal is not None and "/" in entry:
            try:
                if literal in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _ip_or_none(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[str]:
    """DNS lookup (a seam: tests replace it to make a name point at a private address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressError(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass
class Target:
    scheme: str
    host: str  # as written in the URL, without brackets
    port: int
    path: str  # path and query
    addresses: list[str]  # checked addresses to connect to, in order
    allowed: bool  # allow-listed host


def check_url(url: str, *, resolve_dns: bool = True) -> Target:
    """Validate a URL for egress; raise EgressRefused (or EgressError for a failed lookup).

    With `resolve_dns=False` (form validation) only the scheme and an address literal are checked:
    a name's addresses can change, so the real check happens at every request.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressRefused(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise EgressRefused("only http:// and https:// URLs with a host are allowed")
    if parts.username or parts.password:
        raise EgressRefused("URLs with credentials are not allowed")
    allowed = is_allowed_host(host)
    if scheme == "http" and not (settings.DEBUG or allowed):
        raise EgressRefused("HTTPS is required (plain HTTP only with DEBUG or an allow-listed host)")
    port = port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"

    literal = _ip_or_none(host)
    if literal is not None:
        addresses = [str(literal)]
    elif resolve_dns:
        addresses = resolve(host, port)
    else:
        addresses = []
    for address in addresses:
        ip = _ip_or_none(address)
        if ip is None:
            raise EgressRefused(f"{host} resolved to an unusable address")
        if not (allowed or is_public(ip)):
            what = f"{host} is" if literal is not None else f"{host} resolves to {ip}, which is"
            raise EgressRefused(f"{what} not a public address (add the host to HITL_EGRESS_ALLOWED_HOSTS to allow it)")
    if resolve_dns and not addresses:
        raise EgressError(f"cannot resolve {host}: no addresses")
    return Target(scheme, host, port, path, addresses, allowed)


# --- requests ----------------------------------------------------------------------------------------


def post_json(
    url: str,
    payload: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_redirects: int = MAX_REDIRECTS,
) -> Response:
    """POST a JSON body. `payload` may be a str/bytes (sent as is: webhook signatures cover these exact
    bytes) or anything json.dumps takes."""
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = json.dumps(payload, separators=(",", ":")).encode()
    return request(
        "POST",
        url,
        body=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=timeout,
        max_redirects=max_redirects,
    )


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_redirects: int = MAX_REDIRECTS,
    max_body: int = MAX_BODY,
) -> Response:
    """Make one request, following up to `max_redirects` redirects, all within `timeout` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    current_url, current_method, current_body = url, method.upper(), body
    for _hop in range(max_redirects + 1):
        target = check_url(current_url)
        status, response_headers, content = _exchange(
            target, current_method, current_body, dict(headers or {}), deadline, max_body
        )
        location = response_headers.get("location")
        if status in REDIRECT_CODES and location:
            current_url = urljoin(current_url, location)
            if status == 303 or (status in (301, 302) and current_method == "POST"):
                # What every client does (RFC 9110 §15.4): the follow-up is a GET without the body.
                current_method, current_body = "GET", None
                headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
            continue
        return Response(status, response_headers, content, current_url, time.monotonic() - started)
    raise EgressError(f"more than {max_redirects} redirects", retryable=False)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise EgressError("timed out")
    return left


def _exchange(
    target: Target, method: str, body: bytes | None, headers: dict[str, str], deadline: float, max_body: int
) -> tuple[int, dict[str, str], bytes]:
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != (443 if target.scheme == "https" else 80):
        host_header = f"{host_header}:{target.port}"
    headers = {"User-Agent": USER_AGENT, **headers, "Host": host_header}
    last_error: EgressError | None = None
    for address in target.addresses:
        pool = _pool(target, address, _remaining(deadline))
        try:
            response = pool.urlopen(
                method,
                target.path,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:
            # Try the host's next address (e.g. IPv6 then IPv4); all of them were checked.
            last_error = EgressError(f"cannot connect to {target.host} ({address}): {_reason(exc)}")
            pool.close()
            continue
        except urllib3.exceptions.TimeoutError:
            pool.close()
            raise EgressError("timed out") from None
        except urllib3.exceptions.SSLError as exc:
            pool.close()
            raise EgressError(f"TLS error: {_reason(exc)}") from None
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise EgressError(f"HTTP error: {_reason(exc)}") from None
        try:
            content = _read(response, deadline, max_body)
        finally:
            response.release_conn()
            pool.close()
        return response.status, {k.lower(): v for k, v in response.headers.items()}, content
    raise last_error or EgressError(f"cannot connect to {target.host}")


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=limits,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            # Connect to the checked address, but do SNI and certificate checks for the name.
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=limits, maxsize=1, retries=False)


def _read(response: Any, deadline: float, max_body: int) -> bytes:
    """Read at most `max_body` bytes, and never past the deadline (a slow-drip server cannot hold a
    worker: the socket timeout alone is per read, not for the whole body)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < max_body:
            _remaining(deadline)
            chunk = response.read(min(8192, max_body - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except urllib3.exceptions.TimeoutError:
        raise EgressError("timed out reading the response") from None
    except urllib3.exceptions.HTTPError as exc:
        raise EgressError(f"error reading the response: {_reason(exc)}") from None
    return b"".join(chunks)


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    return text[:300]
