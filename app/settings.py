"""One validated settings object, built where it is needed (lifespan, CLI), never at import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["all", "read", "write"]


class Settings(BaseSettings):
    """Read from the environment, then from `.stack/env` written by `orders stack up`."""

    model_config = SettingsConfigDict(env_file=".stack/env", extra="ignore",
                                      populate_by_name=True)

    database_url: str = Field(description="PostgreSQL DSN (asyncpg)")
    elasticsearch_url: str = "http://127.0.0.1:59200"
    redis_url: str = "redis://127.0.0.1:56379/0"
    role: Role = "all"
    admin_token: str | None = Field(default=None, alias="ORDERS_ADMIN_TOKEN", repr=False)
    api_keys: str | None = Field(default=None, alias="ORDERS_API_KEYS", repr=False)
    search_alias: str = Field(default="orders", alias="ORDERS_SEARCH_ALIAS")
    dashboard_namespace: str = Field(default="orders", alias="ORDERS_DASHBOARD_NAMESPACE")
    pool_min_size: int = 2
    pool_max_size: int = 20
    command_timeout_s: float = 5.0
    max_body_bytes: int = 1024 * 1024
