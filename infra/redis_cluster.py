"""A local Redis Cluster: three masters and three replicas from Debian's `redis-server`.

Each node has its own directory (append-only file, `nodes.conf`), binds 127.0.0.1 and runs as
the service user. Ports stay at or below 55535 because each node's cluster bus listens on its
port + 10000. The cluster is created once with `redis-cli --cluster create --cluster-replicas
1`; afterwards the nodes find each other again from their `nodes.conf`.

Where the stack has secrets (infra/security.py), every node loads the single Redis's ACL
(default user off; the administrator, the projector and the reader), and replicas
authenticate to their masters as the administrator (`masteruser`/`masterauth` in the
node's own 0600 config file, never on a command line).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from infra import native, security
from infra.native import Layout, StackError, _wait

BASE_PORT = 55000
PORTS = tuple(range(BASE_PORT + 1, BASE_PORT + 7))  # 55001..55006, buses on 65001..65006
NODE_TIMEOUT_MS = 5000  # a master unreachable this long is failed over to its replica
READY_WITHIN_S = 60


def nodes() -> str:
    """`host:port` of every node, comma-separated (the REDIS_CLUSTER_NODES form)."""
    return ",".join(f"127.0.0.1:{port}" for port in PORTS)


def node_dir(layout: Layout, port: int) -> Path:
    return layout.state / "cluster" / f"redis-{port}"


def _admin_secret() -> str | None:
    return security.read_secret(Layout.default().state, "redis_admin")


def _cli_args(*args: str, anonymous: bool = False) -> tuple[list[str], dict[str, str]]:
    """redis-cli's arguments and environment: as the administrator where the stack has
    secrets (the password in the environment, not on the command line)."""
    secret = None if anonymous else _admin_secret()
    if secret is None:
        return ["redis-cli", *args], {}
    return (["redis-cli", "--user", security.ADMIN, "--no-auth-warning", *args],
            {"REDISCLI_AUTH": secret})


def cli(port: int, *args: str, timeout: float = 5, anonymous: bool = False) -> str:
    """One redis-cli command on one node; its output, or "" when it failed."""
    command, env = _cli_args("-h", "127.0.0.1", "-p", str(port), *args, anonymous=anonymous)
    result = native.run(command, check=False, timeout=timeout, env=env)
    return result.stdout if result.returncode == 0 else ""



def node_running(port: int) -> bool:
    return cli(port, "ping").strip() == "PONG"


def _open(port: int) -> bool:
    """The node answers without a password (started before the stack had secrets)."""
    return cli(port, "ping", anonymous=True).strip() == "PONG"


def cluster_info(port: int) -> dict[str, str]:
    """`CLUSTER INFO` of one node as a dict (empty when it does not answer)."""
    pairs = (line.split(":", 1) for line in cli(port, "cluster", "info").splitlines())
    return {key: value.strip() for key, value in (p for p in pairs if len(p) == 2)}


def cluster_ready() -> bool:
    """Every node answers and sees the cluster whole: all slots served, six nodes known."""
    for port in PORTS:
        info = cluster_info(port)
        if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(PORTS)):
            return False
    return True


def _secured_config(layout: Layout, home: Path) -> list[str]:
    """The node's config file with the ACL and its replication login; [] when unsecured."""
    secret = _admin_secret()
    if secret is None:
        return []
    found = security.ensure_secrets(layout.state)
    acl = home / "users.acl"
    config = home / "secured.conf"
    for path, text in ((acl, security.redis_acl(found)),
                       (config, f"aclfile {acl}\nmasteruser {security.ADMIN}\n"
                                f"masterauth {secret}\n")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        path.chmod(0o600)
    native.chown_paths(home, acl, config)  # the service user's to read (the node may run)
    return [str(config)]


def start_node(layout: Layout, port: int) -> None:
    """Start one node in cluster mode (reusing it when it answers)."""
    home = node_dir(layout, port)
    home.mkdir(parents=True, exist_ok=True)
    config = _secured_config(layout, home)
    if config and _open(port):
        print(f"  restarting Redis node {port} with its ACL file ...", flush=True)
        cli(port, "shutdown", timeout=30, anonymous=True)  # the append-only file stays
        _wait(lambda: not _open(port), 30, f"Redis node {port} did not stop")
    elif config and node_running(port):
        cli(port, "acl", "load")  # a changed secret takes effect now
    if node_running(port):
        return
    native._chown_tree(home)
    native.run(["redis-server", *config, "--bind", "127.0.0.1", "--port", str(port),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "yes",
                "--save", "", "--dir", str(home), "--logfile", str(home / "redis.log"),
                "--pidfile", str(home / "redis.pid"), "--daemonize", "yes"], as_service=True)
    _wait(lambda: node_running(port), 30, f"Redis node {port} did not answer PING; "
                                          f"see {home / 'redis.log'}")


def _create() -> None:
    """Form the cluster from six empty nodes: slots over three masters, one replica each."""
    command, env = _cli_args("--cluster", "create", *(f"127.0.0.1:{port}" for port in PORTS),
                             "--cluster-replicas", "1", "--cluster-yes")
    result = native.run(command, check=False, timeout=120, env=env)
    if result.returncode != 0:
        raise StackError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}"
                         f"{result.stderr[-1000:]}")


def start(layout: Layout) -> None:
    """Start the six nodes, create the cluster when none exists, wait until it serves."""
    if shutil.which("redis-server") is None:
        native._apt_install("redis-server")
    for port in PORTS:
        start_node(layout, port)
    infos = [cluster_info(port) for port in PORTS]
    fresh = [info.get("cluster_known_nodes") == "1" and info.get("cluster_slots_assigned") == "0"
             for info in infos]
    if all(fresh):
        _create()
    elif any(fresh):
        stray = [port for port, new in zip(PORTS, fresh, strict=True) if new]
        raise StackError(f"Redis nodes {stray} lost their cluster state while the others kept "
                         f"it; stop the cluster and remove {layout.state / 'cluster'}/redis-* "
                         f"to create it afresh")
    _wait(cluster_ready, READY_WITHIN_S,
          f"the Redis Cluster did not reach cluster_state:ok; see "
          f"{layout.state / 'cluster'}/redis-*/redis.log")


def stop_node(port: int) -> None:
    if node_running(port):
        cli(port, "shutdown", timeout=30)
        _wait(lambda: not node_running(port), 30, f"Redis node {port} did not stop")


def stop() -> None:
    for port in PORTS:
        stop_node(port)

