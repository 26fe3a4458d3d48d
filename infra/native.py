"""Native processes for machines without a Docker engine.

PostgreSQL and Redis come from Debian's packages, Elasticsearch from Elastic's distribution
zip on Maven Central. All three bind 127.0.0.1 only and run as a non-root service user
(PostgreSQL and Elasticsearch refuse root). Every step is idempotent: a running service is
reused, a missing package is installed, a missing download is fetched once into a cache.
Given the stack's secrets (infra/security.py), each service requires a password: a running
one started without is reconfigured (PostgreSQL reloads, Redis and Elasticsearch restart).
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra import security
from infra.versions import (
    ELASTICSEARCH_ARTIFACT,
    ELASTICSEARCH_JAVA_MAX,
    ELASTICSEARCH_JAVA_MIN,
    ELASTICSEARCH_VERSION,
)

SERVICE_USER = "orders-stack"


def _port(name: str, default: int) -> int:
    """A port of the native stack; `ORDERS_STACK_<NAME>_PORT` moves it (a second, private stack
    beside the usual one)."""
    return int(os.environ.get(f"ORDERS_STACK_{name}_PORT") or default)


PG_PORT = _port("PG", 55432)
REDIS_PORT = _port("REDIS", 56379)
ES_PORT = _port("ES", 59200)
ES_TRANSPORT_PORT = _port("ES_TRANSPORT", 59300)


class StackError(RuntimeError):
    """A service could not be started; the message names the missing piece and its log."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _default_dir(root_path: str, user_path: str) -> Path:
    return Path(root_path) if _is_root() else Path(user_path).expanduser()


@dataclass(frozen=True)
class Layout:
    """Where the native stack keeps its data, logs and downloads (outside the repository)."""

    state: Path
    cache: Path

    @classmethod
    def default(cls) -> Layout:
        state = os.environ.get("ORDERS_STACK_DIR") or _default_dir(
            "/var/lib/orders-stack", "~/.local/state/orders-stack"
        )
        cache = os.environ.get("ORDERS_CACHE_DIR") or _default_dir(
            "/var/cache/orders-stack", "~/.cache/orders-stack"
        )
        return cls(Path(state), Path(cache))

    @property
    def pg_data(self) -> Path:
        return self.state / "postgres" / "data"

    @property
    def pg_log(self) -> Path:
        return self.state / "postgres" / "postgres.log"

    @property
    def redis_dir(self) -> Path:
        return self.state / "redis"

    @property
    def es_home(self) -> Path:
        return self.state / f"elasticsearch-{ELASTICSEARCH_VERSION}"

    @property
    def es_logs(self) -> Path:
        return self.state / "es-logs"


def run(cmd: list[str], *, as_service: bool = False, check: bool = True,
        timeout: float = 600, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command, as the service user when asked and when we are root; `env` adds to
    the environment (secrets go there, never on a command line others can list)."""
    if as_service and _is_root():
        cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
    return subprocess.run(cmd, check=check, text=True, capture_output=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def _apt_install(*packages: str) -> None:
    if not _is_root():
        raise StackError(f"missing {' '.join(packages)}: install it with apt-get (needs root)")
    print(f"  installing {' '.join(packages)} from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def ensure_service_user(layout: Layout) -> None:
    """Create the non-root service user and hand it the state directory."""
    layout.state.mkdir(parents=True, exist_ok=True)
    if not _is_root():
        return
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", str(layout.state), "--shell", "/usr/sbin/nologin",
                        SERVICE_USER], check=True)
    shutil.chown(layout.state, SERVICE_USER, SERVICE_USER)
    # The service user must be able to traverse to the state directory.
    for parent in layout.state.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)


def _chown_tree(path: Path) -> None:
    """Give `path` and everything under it to the service user; never on a directory a
    running server writes into (its files come and go under a recursive chown)."""
    if _is_root():
        subprocess.run(["chown", "-R", f"{SERVICE_USER}:{SERVICE_USER}", str(path)], check=True)


def chown_paths(*paths: Path) -> None:
    """Give just these paths (not what is under them) to the service user."""
    if _is_root():
        subprocess.run(["chown", f"{SERVICE_USER}:{SERVICE_USER}", *map(str, paths)],
                       check=True)


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name))
    if not candidates:
        _apt_install("postgresql")
        return _pg_bin()
    return candidates[-1].parent


def postgres_running(layout: Layout) -> bool:
    if not (layout.pg_data / "PG_VERSION").exists():
        return False
    return run([str(_pg_bin() / "pg_ctl"), "status", "-D", str(layout.pg_data)],
               as_service=True, check=False).returncode == 0


def start_postgres(layout: Layout, found: dict[str, str] | None = None) -> str:
    """Start PostgreSQL (initdb on first use) and return its URL; with the stack's secrets,
    passwords are required over TCP and the schema owner role exists (`_secure_postgres`)."""
    bindir = _pg_bin()
    sock = layout.pg_data.parent
    sock.mkdir(parents=True, exist_ok=True)
    _chown_tree(sock)
    sock.chmod(0o700)  # the socket admits whoever reaches it: the service user only
    if not (layout.pg_data / "PG_VERSION").exists():
        run([str(bindir / "initdb"), "-D", str(layout.pg_data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-locale"], as_service=True)
    if not postgres_running(layout):
        options = (f"-c listen_addresses=127.0.0.1 -p {PG_PORT} -c unix_socket_directories={sock}"
                   " -c max_connections=300 -c shared_buffers=256MB")
        result = run([str(bindir / "pg_ctl"), "start", "-D", str(layout.pg_data), "-w",
                      "-t", "60", "-l", str(layout.pg_log), "-o", options],
                     as_service=True, check=False)
        if result.returncode != 0:
            raise StackError(f"PostgreSQL did not start ({result.stderr.strip()}); "
                             f"see {layout.pg_log}")
    exists = _psql(layout, "SELECT 1 FROM pg_database WHERE datname = 'orders'").stdout
    if exists.strip() != "1":
        _psql(layout, "CREATE DATABASE orders")
    if found is not None:
        _secure_postgres(layout, found)
    return f"postgresql://postgres@127.0.0.1:{PG_PORT}/orders"


def _psql(layout: Layout, sql: str, database: str = "postgres",
          ) -> subprocess.CompletedProcess[str]:
    """Run SQL as the superuser through the socket (the stack's own door, see PG_HBA)."""
    return run([str(_pg_bin() / "psql"), "-h", str(layout.pg_data.parent), "-p", str(PG_PORT),
                "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
               as_service=True)


def _secure_postgres(layout: Layout, found: dict[str, str]) -> None:
    """The schema owner role and the `orders` database in its hands; passwords over TCP."""
    _psql(layout, security.pg_owner_sql(found["pg_owner"]))
    _psql(layout, security.PG_REASSIGN_TABLES, database="orders")
    hba = layout.pg_data / "pg_hba.conf"
    if hba.read_text() != security.PG_HBA:
        hba.write_text(security.PG_HBA)
        _chown_tree(hba)
        # A reload is enough: pg_hba.conf applies to connections made from now on.
        run([str(_pg_bin() / "pg_ctl"), "reload", "-D", str(layout.pg_data)], as_service=True)


def stop_postgres(layout: Layout) -> None:
    if postgres_running(layout):
        run([str(_pg_bin() / "pg_ctl"), "stop", "-D", str(layout.pg_data), "-m", "fast", "-w"],
            as_service=True)


# ---------------------------------------------------------------- Redis


def _redis_cli() -> list[str]:
    return ["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT)]


def _redis_admin(*args: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    """redis-cli as the stack's administrator when its secret exists (else as nobody)."""
    secret = security.read_secret(Layout.default().state, "redis_admin")
    if secret is None:
        return run([*_redis_cli(), *args], check=False, timeout=timeout)
    return run([*_redis_cli(), "--user", security.ADMIN, "--no-auth-warning", *args],
               check=False, timeout=timeout, env={"REDISCLI_AUTH": secret})


def _redis_open() -> bool:
    """True when Redis answers without a password (started before the stack had ACLs)."""
    result = run([*_redis_cli(), "ping"], check=False, timeout=5)
    return result.stdout.strip() == "PONG"


def redis_running() -> bool:
    if shutil.which("redis-cli") is None:
        return False
    return _redis_admin("ping").stdout.strip() == "PONG" or _redis_open()


def start_redis(layout: Layout, found: dict[str, str] | None = None) -> str:
    """Start Redis with an append-only file and return its URL; with the stack's secrets,
    with its ACL file (the default user off), restarting one that runs without."""
    if shutil.which("redis-server") is None:
        _apt_install("redis-server")
    layout.redis_dir.mkdir(parents=True, exist_ok=True)
    log = layout.redis_dir / "redis.log"
    acl = layout.redis_dir / "users.acl"
    if found is not None:
        acl.write_text(security.redis_acl(found))
        acl.chmod(0o600)
    if redis_running():  # its own files are its already, and come and go under a chown -R
        chown_paths(*[path for path in (layout.redis_dir, acl) if path.exists()])
    else:
        _chown_tree(layout.redis_dir)
    if found is not None and _redis_open():
        print("  restarting Redis with its ACL file ...", flush=True)
        stop_redis()  # the append-only file carries the data over
    elif found is not None and redis_running():
        _redis_admin("acl", "load")  # a changed secret takes effect now
    if not redis_running():
        secured = ["--aclfile", str(acl)] if found is not None else []
        run(["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
             "--daemonize", "yes", "--dir", str(layout.redis_dir), "--logfile", str(log),
             "--pidfile", str(layout.redis_dir / "redis.pid"), "--appendonly", "yes",
             "--save", "", *secured], as_service=True)
        _wait(redis_running, 30, f"Redis did not answer PING; see {log}")
    return f"redis://127.0.0.1:{REDIS_PORT}/0"


def stop_redis() -> None:
    if redis_running():
        if _redis_open():
            run([*_redis_cli(), "shutdown"], check=False)
        else:
            _redis_admin("shutdown")
        _wait(lambda: not redis_running(), 30, "Redis did not stop")


# ---------------------------------------------------------------- Elasticsearch


def _java_major(jdk: Path) -> int | None:
    release = jdk / "release"
    if not release.exists():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


def find_jdk() -> Path:
    """The newest JDK under /usr/lib/jvm that the pinned Elasticsearch supports."""
    found: list[tuple[int, Path]] = []
    for jdk in Path("/usr/lib/jvm").glob("*"):
        major = _java_major(jdk)
        if major and ELASTICSEARCH_JAVA_MIN <= major <= ELASTICSEARCH_JAVA_MAX and jdk.is_dir():
            found.append((major, jdk.resolve()))
    if not found:
        raise StackError(
            f"no JDK {ELASTICSEARCH_JAVA_MIN}..{ELASTICSEARCH_JAVA_MAX} under /usr/lib/jvm for "
            f"Elasticsearch {ELASTICSEARCH_VERSION}; install one (e.g. openjdk-21-jdk-headless)")
    return max(found)[1]


def _fetch_distribution(layout: Layout) -> Path:
    target = layout.cache / f"elasticsearch-{ELASTICSEARCH_VERSION}.zip"
    if target.exists():
        return target
    if shutil.which("mvn") is None:
        _apt_install("maven")
    layout.cache.mkdir(parents=True, exist_ok=True)
    print(f"  fetching {ELASTICSEARCH_ARTIFACT} with Maven ...", flush=True)
    result = run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={ELASTICSEARCH_ARTIFACT}",
                  f"-DoutputDirectory={layout.cache}"], check=False)
    if result.returncode != 0 or not target.exists():
        raise StackError(f"could not fetch {ELASTICSEARCH_ARTIFACT}: {result.stdout[-2000:]}")
    return target


def _unpack(archive: Path, dest_parent: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest_parent))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)


def _es_get(path: str, timeout: float = 5, *,
            anonymous: bool = False) -> dict[str, object] | None:
    """GET as the stack's administrator (when its secret exists); None on any failure."""
    request = urllib.request.Request(f"http://127.0.0.1:{ES_PORT}{path}")
    secret = None if anonymous else security.read_secret(Layout.default().state, "es_admin")
    if secret is not None:
        token = base64.b64encode(f"{security.ADMIN}:{secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            body: dict[str, object] = json.loads(r.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def elasticsearch_running() -> bool:
    health = _es_get("/_cluster/health")
    if health is None:  # secured with other credentials, or started before it had any
        health = _es_get("/_cluster/health", anonymous=True)
    return health is not None and health.get("status") in ("green", "yellow")


def _es_users(layout: Layout, jdk: Path, found: dict[str, str]) -> None:
    """The file realm: roles.yml, and each user with its password (re-added on a change)."""
    config = layout.es_home / "config"
    (config / "roles.yml").write_text(security.ES_ROLES)
    stamp = config / "orders-users.stamp"
    wanted = security.es_users_stamp(found)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    tool = [str(layout.es_home / "bin" / "elasticsearch-users")]
    for user, (role, name) in security.ES_USERS.items():
        env = {"ES_JAVA_HOME": str(jdk)}
        run([*tool, "userdel", user], as_service=True, check=False, env=env)
        added = run([*tool, "useradd", user, "-p", found[name], "-r", role], as_service=True,
                    check=False, env=env)
        if added.returncode != 0:
            raise StackError(f"elasticsearch-users could not add {user}: {added.stderr[-500:]}")
    stamp.write_text(wanted)
    _chown_tree(config)


def start_elasticsearch(layout: Layout, found: dict[str, str] | None = None) -> str:
    """Start single-node Elasticsearch from the distribution zip and return its URL; with
    the stack's secrets, with security on (restarting one that runs without)."""
    url = f"http://127.0.0.1:{ES_PORT}"
    if found is not None and _es_get("/_cluster/health", anonymous=True) is not None:
        print("  restarting Elasticsearch with security on ...", flush=True)
        stop_elasticsearch(layout)
    if found is not None and (layout.es_home / "config").is_dir():
        _es_users(layout, find_jdk(), found)  # a running node reloads its file realm
    if elasticsearch_running():
        return url
    if not (layout.es_home / "bin" / "elasticsearch").exists():
        _unpack(_fetch_distribution(layout), layout.state)
    layout.es_logs.mkdir(parents=True, exist_ok=True)
    (layout.state / "es-data").mkdir(parents=True, exist_ok=True)
    jdk = find_jdk()
    if found is not None:
        _es_users(layout, jdk, found)
    for path in (layout.es_home, layout.es_logs, layout.state / "es-data"):
        _chown_tree(path)
    # One node: no transport TLS needed (it talks to no other); HTTP on 127.0.0.1 only.
    secured = {"xpack.security.enabled": "true", "xpack.security.http.ssl.enabled": "false",
               "xpack.security.transport.ssl.enabled": "false"}
    settings = {
        "discovery.type": "single-node", "network.host": "127.0.0.1",
        "http.port": str(ES_PORT), "transport.port": str(ES_TRANSPORT_PORT),
        **(secured if found is not None else {"xpack.security.enabled": "false"}),
        "path.data": str(layout.state / "es-data"),
        "path.logs": str(layout.es_logs),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    startup_log = layout.es_logs / "startup.log"
    cmd = ["env", f"ES_JAVA_HOME={jdk}", "ES_JAVA_OPTS=-Xms1g -Xmx1g",
           str(layout.es_home / "bin" / "elasticsearch"), "-d", "-p",
           str(layout.es_home / "es.pid"), *[f"-E{k}={v}" for k, v in settings.items()]]
    result = run(cmd, as_service=True, check=False, timeout=180)
    startup_log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise StackError(f"Elasticsearch did not start on {jdk.name}; see {startup_log} and "
                         f"{layout.es_logs / 'elasticsearch.log'}")
    _wait(elasticsearch_running, 180,
          f"Elasticsearch did not become healthy; see {layout.es_logs / 'elasticsearch.log'}")
    return url


def stop_elasticsearch(layout: Layout) -> None:
    pidfile = layout.es_home / "es.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass
        _wait(lambda: not elasticsearch_running(), 60, "Elasticsearch did not stop")


def _wait(ready: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise StackError(message)
