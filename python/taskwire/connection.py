"""Connecting to NATS from a URL or from NatsConnectionSettings (sdk/nats/connection-settings.ts)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import ssl
import time
from typing import Any, Callable, Mapping, Optional, Union

from nats.aio.client import Client
from nats.errors import NoServersError

DEFAULT_SERVER = "nats://127.0.0.1:4222"
_KNOWN = {"servers", "inboxPrefix", "name", "user", "password", "token", "nkeySeed", "creds", "tls", "pingIntervalMs"}
_KNOWN_TLS = {"ca", "cert", "key", "serverName", "handshakeFirst"}

Settings = Union[str, Mapping[str, Any]]


class SettingsError(ValueError):
    """Connection settings this runtime cannot use; the message names the setting, never a secret."""


def redact(url: str) -> str:
    """A URL without the credentials it may carry."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)?.*@", lambda m: m.group(1) or "", url, flags=re.I | re.S)


def describe_servers(settings: Settings) -> str:
    return ", ".join(redact(s) for s in _servers(settings))


def _servers(settings: Settings) -> list[str]:
    if isinstance(settings, str):
        return [settings]
    servers = settings.get("servers", DEFAULT_SERVER)
    listed = [servers] if isinstance(servers, str) else list(servers)
    if not listed:
        raise SettingsError("NATS settings: servers is empty")
    return listed


def resolve_secret(secret: Any, key: str) -> str:
    """A secret from `{"env": NAME}` or `{"file": PATH}` (or given as it is, in code)."""
    if isinstance(secret, str):
        return secret
    if isinstance(secret, Mapping) and "env" in secret:
        value = os.environ.get(str(secret["env"]), "")
        if not value:
            raise SettingsError(f"NATS {key}: environment variable {secret['env']} is not set")
        return value
    if isinstance(secret, Mapping) and "file" in secret:
        try:
            with open(str(secret["file"]), encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as error:
            raise SettingsError(f"NATS {key}: cannot read {secret['file']}: {error.strerror}") from None
        if not value:
            raise SettingsError(f"NATS {key}: {secret['file']} is empty")
        return value
    raise SettingsError(f'NATS {key}: must be {{"env": NAME}} or {{"file": PATH}}')


def connect_options(settings: Settings) -> dict[str, Any]:
    """nats-py's `connect()` arguments for the settings; refuses what nats-py cannot do here."""
    options: dict[str, Any] = {"servers": _servers(settings), "max_reconnect_attempts": -1}
    if isinstance(settings, str):
        return options
    unknown = set(settings) - _KNOWN
    if unknown:
        raise SettingsError(
            f"NATS settings: {', '.join(sorted(unknown))} not supported by the Python worker "
            f"(it supports {', '.join(sorted(_KNOWN))})"
        )
    if "name" in settings:
        options["name"] = str(settings["name"])
    if "inboxPrefix" in settings:
        options["inbox_prefix"] = str(settings["inboxPrefix"])
    if "user" in settings:
        options["user"] = str(settings["user"])
    if "password" in settings:
        options["password"] = resolve_secret(settings["password"], "password")
    if "token" in settings:
        options["token"] = resolve_secret(settings["token"], "token")
    if ("nkeySeed" in settings or "creds" in settings) and importlib.util.find_spec("nkeys") is None:
        raise SettingsError("NATS nkeySeed and creds need the Python package nkeys: pip install nkeys")
    if "nkeySeed" in settings:
        options["nkeys_seed_str"] = resolve_secret(settings["nkeySeed"], "nkeySeed")
    if "creds" in settings:
        options["user_credentials"] = str(settings["creds"])
    options["ping_interval"] = max(1, round(float(settings.get("pingIntervalMs", 10_000)) / 1000))
    options["max_outstanding_pings"] = 2
    tls = settings.get("tls")
    if tls is not None:
        unknown_tls = set(tls) - _KNOWN_TLS
        if unknown_tls:
            raise SettingsError(f"NATS settings: tls.{', tls.'.join(sorted(unknown_tls))} not supported")
        context = ssl.create_default_context(cafile=tls.get("ca"))
        if tls.get("cert"):
            context.load_cert_chain(tls["cert"], tls.get("key"))
        options["tls"] = context
        if tls.get("serverName"):
            options["tls_hostname"] = str(tls["serverName"])
        options["tls_handshake_first"] = bool(tls.get("handshakeFirst", False))
    return options


async def connect(settings: Settings, name: Optional[str] = None, log: Callable[[str], None] = print) -> Client:
    """Connects, waiting (a try a second) for a NATS that does not answer yet; says so on the
    first miss and about once a minute after."""
    options = connect_options(settings)
    if name and "name" not in options:
        options["name"] = name
    where = describe_servers(settings)
    # nats-py prints a traceback for every failed connect and reconnect unless given these:
    # one line on losing the server and on finding it again, and errors at most once a minute.
    errors_said: dict[str, float] = {}

    async def on_error(error: Exception) -> None:
        kind, now = type(error).__name__, time.monotonic()
        if now - errors_said.get(kind, -60.0) >= 60:
            errors_said[kind] = now
            # Credentials in a URL the library names are left out.
            text = re.sub(r"://[^\s/@]*@", "://", str(error))
            log(f"NATS at {where}: {kind}: {text}")

    client: Optional[Client] = None

    async def on_disconnected() -> None:
        # nats-py says so on its own close and drain too: only a lost connection is news.
        if client is not None and not (client.is_closed or client.is_draining):
            log(f"disconnected from NATS at {where}: reconnecting")

    async def on_reconnected() -> None:
        log(f"reconnected to NATS at {where}")

    options.update(error_cb=on_error, disconnected_cb=on_disconnected, reconnected_cb=on_reconnected)
    said_at: Optional[float] = None
    while True:
        try:
            client = Client()
            await client.connect(**options)
            return client
        except (OSError, NoServersError, asyncio.TimeoutError) as error:
            now = time.monotonic()
            if said_at is None or now - said_at >= 60:
                said_at = now
                log(f"waiting for NATS at {where}: {type(error).__name__}")
            await asyncio.sleep(1)
