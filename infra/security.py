"""The native stack's credentials: generated once, kept owner-only, applied to each service.

`orders stack up` creates one random secret per user in `<state>/secrets/` (directory 0700,
files 0600) unless a file is there already, which is how an operator supplies their own.
The services get only what they need to check a password: PostgreSQL a SCRAM verifier,
Redis a SHA-256 in its ACL file, Elasticsearch a bcrypt hash in its file realm. `.stack/env`
(0600) names the administrator URLs the stack and the test fixtures use, and the files
holding each process's password (see app/kernel/credentials.py for who uses which).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from app.kernel.credentials import scram_verifier

# One secret per user; `pg_owner` owns the schema and runs migrations (no superuser runs
# anything), `es_admin` and `redis_admin` are the stack's and the test fixtures' own.
NAMES = ("pg_owner", "pg_writer", "pg_reader", "pg_projector", "pg_rebuild",
         "es_admin", "es_writer", "es_reader", "redis_admin", "redis_projector", "redis_reader")
PG_OWNER = "orders_owner"
ADMIN = "orders_admin"
# The read models this stack's users may touch: the `orders` alias, its `orders-vN` indices
# and the `orders:` key namespace (tests use names under the same prefix).
READ_MODELS = "orders*"


def secrets_dir(state: Path) -> Path:
    return state / "secrets"


def ensure_secrets(state: Path) -> dict[str, str]:
    """Every secret, created (random, 0600) where no file holds one yet."""
    folder = secrets_dir(state)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    found: dict[str, str] = {}
    for name in NAMES:
        path = folder / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
        value = path.read_text().strip()
        if not value:
            raise ValueError(f"{path} is empty: put a password in it or delete it")
        found[name] = value
    return found


def read_secret(state: Path, name: str) -> str | None:
    """One secret, or None before the first secured start (or without the right to read)."""
    try:
        return (secrets_dir(state) / name).read_text().strip() or None
    except OSError:
        return None


def env_entries(state: Path, found: dict[str, str], pg_port: int, redis_port: int,
                es_port: int) -> dict[str, str]:
    """What `.stack/env` holds: administrator URLs and the files of the process passwords."""
    folder = secrets_dir(state)
    entries = {
        "DATABASE_URL": f"postgresql://{PG_OWNER}:{found['pg_owner']}@127.0.0.1:{pg_port}/orders",
        "REDIS_URL": f"redis://{ADMIN}:{found['redis_admin']}@127.0.0.1:{redis_port}/0",
        "ELASTICSEARCH_URL": f"http://{ADMIN}:{found['es_admin']}@127.0.0.1:{es_port}",
    }
    for name in NAMES:
        if name not in ("pg_owner", "es_admin", "redis_admin"):
            entries[f"ORDERS_{name.upper()}_PASSWORD_FILE"] = str(folder / name)
    return entries


# ---------------------------------------------------------------- PostgreSQL

# Over TCP every role proves its password. The socket's directory is 0700 and owned by the
# service user, so `trust` there admits that user (and root) only: the stack's own door.
PG_HBA = """# Written by `orders stack up`; edits are replaced on the next start.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def pg_owner_sql(password: str) -> str:
    """Create or update the schema owner (not a superuser) and hand it the `orders` database."""
    return f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_OWNER}') THEN
        CREATE ROLE {PG_OWNER};
    END IF;
END $$;
ALTER ROLE {PG_OWNER} WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE
    PASSWORD '{scram_verifier(password)}';
GRANT pg_signal_backend TO {PG_OWNER};
ALTER DATABASE orders OWNER TO {PG_OWNER};
"""


# Tables created before the owner existed (a stack from before roles) change hands; their
# identity sequences follow them.
PG_REASSIGN_TABLES = f"""
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
               AND pg_get_userbyid(c.relowner) <> '{PG_OWNER}' LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO {PG_OWNER}', t);
    END LOOP;
END $$;
"""


# ---------------------------------------------------------------- Redis

_REDIS_SESSION = ("+ping +hello +auth +select +echo +quit +reset "
                  "+client|setname +client|getname +client|id")
_REDIS_SCRIPTS = "+evalsha +eval +script|load +script|exists"
# What redis-py's cluster client asks a node for: the slot map, the command table (to find
# a script's keys), and the redirect handshakes.
_REDIS_CLUSTER = "+cluster|slots +cluster|shards +cluster|nodes +command +asking +readonly"


def redis_acl(found: dict[str, str]) -> str:
    """The ACL file: the default user off, one administrator, and the two process users.

    Commands called inside a script are checked against the caller's ACL too, so the
    reader's scripts can read and nothing else.
    """

    def secret(name: str) -> str:
        return "#" + hashlib.sha256(found[name].encode()).hexdigest()

    scope = (f"resetkeys ~{READ_MODELS} resetchannels &{READ_MODELS} -@all {_REDIS_SESSION} "
             f"{_REDIS_CLUSTER}")
    return "\n".join([
        "user default off resetkeys resetchannels -@all",
        f"user {ADMIN} on {secret('redis_admin')} ~* &* +@all",
        f"user orders_projector on {secret('redis_projector')} {scope} {_REDIS_SCRIPTS} "
        "+get +set +incr +del +exists +hget +hmget +hset +hgetall +hincrby +zincrby "
        "+zrange +zrevrange +publish",
        f"user orders_reader on {secret('redis_reader')} {scope} {_REDIS_SCRIPTS} "
        "+get +hmget +hgetall +zrange +zrevrange +subscribe +unsubscribe",
    ]) + "\n"


# ---------------------------------------------------------------- Elasticsearch

ES_ROLES = f"""# Written by `orders stack up`; edits are replaced on the next start.
orders_writer:
  cluster: [monitor]
  indices:
    - names: ["{READ_MODELS}"]
      privileges: [create_index, delete_index, manage, write, read]
orders_reader:
  cluster: [monitor]
  indices:
    - names: ["{READ_MODELS}"]
      privileges: [read, view_index_metadata]
"""
# user -> (role, secret name)
ES_USERS = {ADMIN: ("superuser", "es_admin"), "orders_writer": ("orders_writer", "es_writer"),
            "orders_reader": ("orders_reader", "es_reader")}


def es_users_stamp(found: dict[str, str]) -> str:
    """Changes when any Elasticsearch user's password does (the file realm is rewritten)."""
    joined = "\n".join(f"{user}:{found[name]}" for user, (_, name) in ES_USERS.items())
    return hashlib.sha256(joined.encode()).hexdigest()
