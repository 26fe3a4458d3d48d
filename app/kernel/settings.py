"""One validated settings object, built where it is needed (lifespan, CLI), never at import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.kernel.partitions import DEFAULT_PARTITIONS, check_count

Role = Literal["all", "read", "write"]
ENV_FILE_VARIABLE = "ORDERS_ENV_FILE"
# `orders stack up` writes the URLs here, in the project the package was installed from.
PROJECT_ENV_FILE = Path(__file__).resolve().parents[2] / ".stack" / "env"


class Settings(BaseSettings):
    """Read from the environment, then from `.stack/env` written by `orders stack up`.

    One naming scheme: the three service URLs keep their usual names (`DATABASE_URL`,
    `ELASTICSEARCH_URL`, `REDIS_URL`); every other setting is `ORDERS_` + the field's name in
    capitals (`ORDERS_API_ROLE`, `ORDERS_POOL_MAX_SIZE`, `ORDERS_MAX_BODY_BYTES`, ...).
    """

    # `ORDERS_X=none` unsets X even where `.stack/env` names it (the Docker tests do so).
    model_config = SettingsConfigDict(env_file=".stack/env", env_prefix="ORDERS_",
                                      extra="ignore", populate_by_name=True,
                                      env_parse_none_str="none")

    database_url: str = Field(alias="DATABASE_URL", description="PostgreSQL DSN (asyncpg)")
    elasticsearch_url: str = Field(default="http://127.0.0.1:59200", min_length=1,
                                   alias="ELASTICSEARCH_URL",
                                   description="one node's URL, or several comma-separated")
    redis_url: str = Field(default="redis://127.0.0.1:56379/0", alias="REDIS_URL")
    # `host:port,host:port,...` of a Redis Cluster's nodes; when set, used instead of
    # REDIS_URL (the name `orders stack up --cluster` and the compose cluster profile write).
    redis_cluster_nodes: str | None = Field(default=None, alias="REDIS_CLUSTER_NODES")
    role: Role = Field(default="all", alias="ORDERS_API_ROLE")
    admin_token: str | None = Field(default=None, repr=False)
    api_keys: str | None = Field(default=None, repr=False)
    search_alias: str = "orders"
    dashboard_namespace: str = "orders"
    # The search index's layout on the cluster; the defaults suit a single node.
    search_shards: int = Field(default=1, ge=1, le=1024)
    search_replicas: int = Field(default=0, ge=0, le=16)
    search_wait_for_active_shards: str = Field(
        default="1", pattern=r"^(all|[1-9][0-9]?)$",
        description="copies of each shard that must be active before a write proceeds")
    # How often Elasticsearch makes new writes searchable: the bound on search freshness,
    # and (each refresh writes a segment) most of what indexing costs it.
    search_refresh_interval: str = Field(default="250ms", pattern=r"^[1-9][0-9]*(ms|s)$")
    pool_min_size: int = 2
    pool_max_size: int = 20
    command_timeout_s: float = 5.0
    max_body_bytes: int = 1024 * 1024
    # Each projection runs as this many partitions of the log (a power of two); changing it
    # means building the read models anew (`orders reindex`), blue/green.
    partitions: int = DEFAULT_PARTITIONS

    @field_validator("partitions")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        return check_count(value)


    # The credential of each kind of process (app/kernel/credentials.py says who uses which);
    # `ORDERS_<NAME>`, or the file named by `ORDERS_<NAME>_FILE`. Unset: the URL's own user.
    pg_writer_password: SecretStr | None = None
    pg_reader_password: SecretStr | None = None
    pg_projector_password: SecretStr | None = None
    pg_rebuild_password: SecretStr | None = None
    es_writer_password: SecretStr | None = None
    es_reader_password: SecretStr | None = None
    redis_projector_password: SecretStr | None = None
    redis_reader_password: SecretStr | None = None
    pg_writer_password_file: Path | None = None
    pg_reader_password_file: Path | None = None
    pg_projector_password_file: Path | None = None
    pg_rebuild_password_file: Path | None = None
    es_writer_password_file: Path | None = None
    es_reader_password_file: Path | None = None
    redis_projector_password_file: Path | None = None
    redis_reader_password_file: Path | None = None

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        """A secret given as a file is read here, once; the value wins over the file."""
        for name in SECRETS:
            path: Path | None = getattr(self, f"{name}_file")
            if getattr(self, name) is None and path is not None:
                try:
                    value = path.read_text().strip()
                except OSError as exc:
                    raise ValueError(f"ORDERS_{name.upper()}_FILE: cannot read {path} "
                                     f"({exc.strerror})") from None
                setattr(self, name, SecretStr(value))
        return self

    @property
    def elasticsearch_hosts(self) -> list[str]:
        """The Elasticsearch nodes the clients spread requests over (and fail over between)."""
        return elasticsearch_hosts(self.elasticsearch_url)


SECRETS = ("pg_writer_password", "pg_reader_password", "pg_projector_password",
           "pg_rebuild_password", "es_writer_password", "es_reader_password",
           "redis_projector_password", "redis_reader_password")


def elasticsearch_hosts(url: str) -> list[str]:
    """`ELASTICSEARCH_URL` as a list of node URLs: one URL, or several comma-separated."""
    hosts = [part.strip() for part in url.split(",") if part.strip()]
    if not hosts:
        raise ValueError("ELASTICSEARCH_URL names no node")
    return hosts


def env_file() -> Path | None:
    """The stack's settings file: `$ORDERS_ENV_FILE`, else `./.stack/env`, else the project's
    own `.stack/env` (so the CLI works from any directory); None when there is none."""
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named:
        return Path(named)
    for candidate in (Path.cwd() / ".stack" / "env", PROJECT_ENV_FILE):
        if candidate.is_file():
            return candidate
    return None


def load_settings() -> Settings:
    """Settings from the environment, then from the stack's settings file (`env_file`)."""
    return Settings(_env_file=env_file())  # type: ignore[call-arg]
