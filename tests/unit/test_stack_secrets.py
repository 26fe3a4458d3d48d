"""The stack's secrets: made once, owner-only, an operator's own kept; what each service gets."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from app.kernel.credentials import scram_verifier, with_userinfo, without_userinfo
from app.kernel.settings import SECRETS, Settings
from infra import security


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_made_once_owner_only_and_an_operators_own_is_kept(tmp_path: Path) -> None:
    folder = security.secrets_dir(tmp_path)
    folder.mkdir(mode=0o755)
    (folder / "pg_writer").write_text("my-own-writer-secret\n")
    first = security.ensure_secrets(tmp_path)
    assert set(first) == set(security.NAMES)
    assert first["pg_writer"] == "my-own-writer-secret"
    assert len(set(first.values())) == len(security.NAMES)  # each user its own
    assert mode(folder) == 0o700
    assert all(mode(folder / name) == 0o600 for name in security.NAMES)
    assert security.ensure_secrets(tmp_path) == first  # a second start changes nothing


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    folder = security.secrets_dir(tmp_path)
    folder.mkdir()
    (folder / "es_reader").write_text("\n")
    with pytest.raises(ValueError, match="es_reader is empty"):
        security.ensure_secrets(tmp_path)


def test_env_names_password_files_and_settings_read_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = security.ensure_secrets(tmp_path)
    entries = security.env_entries(tmp_path, found, 1, 2, 3)
    assert entries["DATABASE_URL"].startswith("postgresql://orders_owner:")
    for name in SECRETS:  # a value set directly would win over its file
        monkeypatch.delenv(f"ORDERS_{name.upper()}", raising=False)
    for key, value in entries.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # type: ignore[call-arg]
    assert settings.pg_projector_password is not None
    assert settings.pg_projector_password.get_secret_value() == found["pg_projector"]
    assert found["pg_projector"] not in repr(settings)


def test_redis_acl_turns_the_default_user_off_and_stores_only_hashes() -> None:
    found = {name: f"secret-{name}" for name in security.NAMES}
    acl = security.redis_acl(found)
    assert acl.splitlines()[0].startswith("user default off")
    assert "secret-" not in acl
    assert "#" + hashlib.sha256(b"secret-redis_reader").hexdigest() in acl
    reader = next(line for line in acl.splitlines() if line.startswith("user orders_reader"))
    assert "+publish" not in reader and "+set" not in reader and "+subscribe" in reader


def test_scram_verifier_has_postgres_shape_and_hides_the_password() -> None:
    verifier = scram_verifier("hunter2-long-enough")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert "hunter2" not in verifier
    assert verifier != scram_verifier("hunter2-long-enough")  # salted


def test_userinfo_is_replaced_not_appended() -> None:
    url = with_userinfo("redis://admin:pw@127.0.0.1:6379/0", "orders_reader", "p@ss/word")
    assert url == "redis://orders_reader:p%40ss%2Fword@127.0.0.1:6379/0"
    assert without_userinfo(url) == "redis://127.0.0.1:6379/0"
