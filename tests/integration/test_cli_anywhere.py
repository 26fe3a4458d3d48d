"""The `orders` command finds the stack's settings from any directory, or says in one line
what is missing and how to set it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.kernel.settings import PROJECT_ENV_FILE
from tests.helpers.services import ServiceUrls

ORDERS = [sys.executable, "-m", "orders_cli.main"]


def _orders(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DATABASE_URL", "ELASTICSEARCH_URL", "REDIS_URL", "ORDERS_ENV_FILE")}
    return subprocess.run([*ORDERS, *args], cwd=cwd, env={**clean, **env}, text=True,
                          capture_output=True, timeout=120)


def _env_file(path: Path, urls: ServiceUrls, database_url: str) -> Path:
    path.write_text(f"DATABASE_URL={database_url}\nELASTICSEARCH_URL={urls.elasticsearch}\n"
                    f"REDIS_URL={urls.redis}\n")
    return path


def test_status_works_from_another_directory_with_orders_env_file(
        tmp_path: Path, service_urls: ServiceUrls, database_url: str) -> None:
    env_file = _env_file(tmp_path / "stack.env", service_urls, database_url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _orders("status", cwd=elsewhere, ORDERS_ENV_FILE=str(env_file))
    assert result.returncode == 0, result.stderr
    assert {p["name"] for p in json.loads(result.stdout)} == {"search", "dashboard"}


@pytest.mark.skipif(not PROJECT_ENV_FILE.is_file(), reason="no .stack/env in the project")
def test_status_finds_the_projects_stack_env_from_any_directory(tmp_path: Path) -> None:
    result = _orders("status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_missing_settings_are_one_line_naming_the_variable_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "empty.env").write_text("")
    for env_file in ("empty.env", "no-such.env"):
        result = _orders("status", cwd=tmp_path, ORDERS_ENV_FILE=env_file)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and "ORDERS_ENV_FILE" in line
    empty = _orders("status", cwd=tmp_path, ORDERS_ENV_FILE="empty.env")
    assert "DATABASE_URL not set" in empty.stderr and "make stack" in empty.stderr


def test_an_unreachable_service_is_one_line(tmp_path: Path) -> None:
    result = _orders("status", cwd=tmp_path, DATABASE_URL="postgresql://postgres@127.0.0.1:1/x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "orders stack up" in line

