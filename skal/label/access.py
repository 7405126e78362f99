"""Who may reach ``skal label serve``: the Host names it answers to, its token, its URLs.

A page served on a machine can be reached by other web pages through DNS
rebinding (a foreign name that resolves to this machine): the server
answers only to a Host header that names it. Off loopback a token guards
every request as well (as Jupyter's does); these are the rules and the URLs
that pass them. The checks themselves run in :mod:`skal.label.server`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket

__all__ = ["LOOPBACK", "WILDCARD", "new_token", "machine_names", "allowed_hostnames",
           "server_urls", "same_address", "split_host"]

#: Names of the loopback interface a Host header may use.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Bind addresses that listen on every interface.
WILDCARD = ("0.0.0.0", "::", "")


def new_token():
    """A random token for the server's URL (as Jupyter prints one)."""
    return secrets.token_urlsafe(24)


def machine_names():
    """This machine's host name, full name and the addresses they and its default route use.

    Returns
    -------
    list of str
        Names first, then addresses; loopback ones left out; no duplicates.
    """
    names = []
    for name in (socket.gethostname(), socket.getfqdn()):
        names.append(name)
        try:
            names.extend(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    # The address of the default route's interface: a UDP "connect" sends nothing.
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed anywhere real
        names.append(s.getsockname()[0])
    seen = []
    for name in names:
        if name and name.lower() not in seen and not _is_loopback(name):
            seen.append(name.lower())
    return seen


def _is_loopback(name):
    if name in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hostnames(host, extra=()):
    """The host names a request's Host header may carry for a server bound to ``host``.

    Loopback binds accept the loopback names; a wildcard bind (``0.0.0.0``,
    ``::``) accepts those plus this machine's names and addresses
    (:func:`machine_names`); any other address accepts itself. ``extra``
    adds names (``serve --allow-host``). The guard also accepts the address
    a request arrived on (see :func:`create_app`).
    """
    names = set(LOOPBACK) if host in LOOPBACK or host in WILDCARD else {host}
    if host in WILDCARD:
        names.update(machine_names())
    names.update(extra)
    return {n.lower() for n in names}


def server_urls(host, port, token, extra=()):
    """Every URL that reaches a server bound to ``host``, the most useful first.

    A wildcard bind lists this machine's names and addresses, then loopback;
    off loopback each URL carries the token.

    Returns
    -------
    list of str
    """
    if host in LOOPBACK:
        shown = [host]
    elif host in WILDCARD:
        shown = machine_names() + ["127.0.0.1"]
    else:
        shown = [host]
    shown += [name for name in extra if name not in shown]
    suffix = "" if host in LOOPBACK else f"?token={token}"
    return [f"http://{f'[{name}]' if ':' in name else name}:{port}/{suffix}" for name in shown]


def same_address(name, scope):
    """Whether ``name`` is an IP literal equal to the local address the request arrived on.

    Such a Host header cannot come from DNS rebinding (the browser's origin
    is the address itself), so a colleague may open the machine's own
    address without ``--allow-host``.
    """
    server = scope.get("server")
    if not server:
        return False
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(server[0])
    except ValueError:
        return False


def split_host(header):
    """(hostname, port) of a Host header; port None when absent; None when malformed."""
    header = (header or "").strip().lower()
    if not header:
        return None
    if header.startswith("["):  # [::1]:8765
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1:]
        port = rest[1:] if rest.startswith(":") else None
    else:
        name, _, port = header.partition(":")
        port = port or None
    if port is not None and not port.isdigit():
        return None
    return name, None if port is None else int(port)
