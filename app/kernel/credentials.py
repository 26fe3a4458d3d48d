"""Who connects as whom: the credential of each kind of process, for each service.

PostgreSQL roles are created by the migrations (`infra/migrations/005_roles.sql`); their
passwords, like those of the Elasticsearch and Redis users the stack creates, come from
`Settings` (the environment or files). A kind whose password is not configured connects
with the service URL as given (a laptop's open stack, or the operator's own URL).

| process                  | PostgreSQL       | Elasticsearch   | Redis            |
|--------------------------|------------------|-----------------|------------------|
| API `--role write`/`all` | orders_writer    | orders_reader   | orders_reader    |
| API `--role read`        | orders_reader    | orders_reader   | orders_reader    |
| projector                | orders_projector | orders_writer   | orders_projector |
| rebuild (`orders reindex`)| orders_rebuild  | orders_writer   | orders_projector |
| CLI, benchmarks          | the URL's user   | the URL's user  | the URL's user   |
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from app.kernel.settings import Settings

Service = Literal["postgres", "elasticsearch", "redis"]
SERVICE_NAMES: dict[Service, str] = {"postgres": "PostgreSQL", "elasticsearch": "Elasticsearch",
                                     "redis": "Redis"}
# The PostgreSQL roles the migrations create, by the settings field holding each password.
PG_ROLES = {"pg_writer_password": "orders_writer", "pg_reader_password": "orders_reader",
            "pg_projector_password": "orders_projector",
            "pg_rebuild_password": "orders_rebuild"}
ES_USERS = {"es_writer_password": "orders_writer", "es_reader_password": "orders_reader"}
REDIS_USERS = {"redis_projector_password": "orders_projector",
               "redis_reader_password": "orders_reader"}

# (kind, API role) -> the settings field of each service's password; absent: the URL's user.
_USES: dict[str, dict[Service, str]] = {
    "api:write": {"postgres": "pg_writer_password", "elasticsearch": "es_reader_password",
                  "redis": "redis_reader_password"},
    "api:all": {"postgres": "pg_writer_password", "elasticsearch": "es_reader_password",
                "redis": "redis_reader_password"},
    "api:read": {"postgres": "pg_reader_password", "elasticsearch": "es_reader_password",
                 "redis": "redis_reader_password"},
    "projector": {"postgres": "pg_projector_password", "elasticsearch": "es_writer_password",
                  "redis": "redis_projector_password"},
    "rebuild": {"postgres": "pg_rebuild_password", "elasticsearch": "es_writer_password",
                "redis": "redis_projector_password"},
}
_USERS: dict[Service, dict[str, str]] = {"postgres": PG_ROLES, "elasticsearch": ES_USERS,
                                         "redis": REDIS_USERS}


class CredentialsRefused(RuntimeError):
    """A service refused this process's credential; the message names service, user and
    the setting to fix, never the secret."""

    def __init__(self, service: Service, user: str | None, setting: str | None,
                 reason: str) -> None:
        who = f"user {user!r}" if user else "the user of its URL"
        fix = f"; check {setting} (or {setting}_FILE)" if setting else ""
        super().__init__(f"{SERVICE_NAMES[service]} refused {who}: {reason}{fix}")
        self.service = service


@dataclass(frozen=True)
class Credential:
    """One user and password of one service, and the setting it came from."""

    service: Service
    user: str
    password: str
    setting: str

    def __repr__(self) -> str:
        return f"Credential({self.service}, {self.user!r}, from {self.setting})"


def credential(settings: Settings, kind: str, service: Service) -> Credential | None:
    """The credential a process of `kind` uses for `service`; None: the URL as given."""
    key = f"api:{settings.role}" if kind == "api" else kind
    field = _USES.get(key, {}).get(service)
    if field is None:
        return None
    secret = getattr(settings, field)
    if secret is None:
        return None
    return Credential(service, _USERS[service][field], secret.get_secret_value(),
                      f"ORDERS_{field.upper()}")


def without_userinfo(url: str) -> str:
    """The URL with any `user:password@` removed (the credential is passed on its own)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host))


def with_userinfo(url: str, user: str, password: str) -> str:
    """The URL with `user:password@` in place of any it had."""
    parts = urlsplit(without_userinfo(url))
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of `password`: what `ALTER ROLE ... PASSWORD`
    stores, computed here so that the password itself never reaches the server's logs."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}"
            f"${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")
