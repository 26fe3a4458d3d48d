"""A local three-node Elasticsearch cluster from the single-node stack's distribution zip.

One Elasticsearch home, three nodes: each with its own `path.data`, `path.logs`, pid file and
HTTP/transport ports, all bound to 127.0.0.1, run as the non-root service user with small
heaps. The nodes find each other through `discovery.seed_hosts`; `cluster.initial_master_nodes`
is passed only on a node's first boot (an empty data directory), as Elasticsearch asks.

Where the stack has secrets (infra/security.py), the nodes run with security on, sharing
the single node's file realm (one Elasticsearch home, one `config/`): every request needs a
user, and the nodes talk to each other over TLS with certificates the stack makes itself
(a CA of its own and a node certificate for 127.0.0.1, under `config/certs/`, keys 0600);
a node without a certificate signed by that CA cannot join.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra import native, security
from infra.native import Layout, StackError

CLUSTER_NAME = "orders-cluster"
NODE_COUNT = 3
HTTP_BASE = 59210  # nodes answer on 59211..59213; the single node keeps 59200
TRANSPORT_BASE = 59310  # 59311..59313; the single node keeps 59300
HEAP = "384m"
# Generous: three JVMs starting side by side on two busy cores take minutes, not seconds.
START_WITHIN_S = 300
LAUNCH_ATTEMPTS = 2  # a port borrowed between our check and the bind gets a second try
PORTS_FREE_WITHIN_S = 120
GREEN_WITHIN_S = 180


@dataclass(frozen=True)
class EsNode:
    """One node of the local cluster (numbered from 1)."""

    number: int

    @property
    def name(self) -> str:
        return f"orders-es-{self.number}"

    @property
    def http_port(self) -> int:
        return HTTP_BASE + self.number

    @property
    def transport_port(self) -> int:
        return TRANSPORT_BASE + self.number

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def home(self, layout: Layout) -> Path:
        return layout.state / "cluster" / self.name

    def pidfile(self, layout: Layout) -> Path:
        return self.home(layout) / "es.pid"


NODES = tuple(EsNode(n) for n in range(1, NODE_COUNT + 1))


def _admin_secret() -> str | None:
    """The stack administrator's password; None when the stack has no secrets (unsecured)."""
    return security.read_secret(Layout.default().state, "es_admin")


def urls() -> str:
    """The cluster's HTTP endpoints, comma-separated (the form ELASTICSEARCH_URL takes), as
    the administrator when the cluster is secured."""
    secret = _admin_secret()
    auth = f"{security.ADMIN}:{secret}@" if secret is not None else ""
    return ",".join(node.url.replace("http://", f"http://{auth}") for node in NODES)


def _get(url: str, timeout: float = 5, *, anonymous: bool = False) -> dict[str, object] | None:
    """The JSON a node answers, also with an error status (a health wait that timed out is
    408 with the health in its body); None when no node answers. As the administrator
    when the stack has secrets, unless `anonymous`."""
    request = urllib.request.Request(url)
    secret = None if anonymous else _admin_secret()
    if secret is not None:
        token = base64.b64encode(f"{security.ADMIN}:{secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as refused:
        raw = refused.read()
    except (urllib.error.URLError, OSError):
        return None
    try:
        body: dict[str, object] = json.loads(raw)
    except ValueError:
        return None
    return body


def node_pid(layout: Layout, node: EsNode) -> int | None:
    """The pid of the node's server process while it runs, else None."""
    try:
        pid = int(node.pidfile(layout).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def node_answers(node: EsNode) -> bool:
    """The node answers HTTP (from its own view of the cluster; no master needed)."""
    return _get(f"{node.url}/_cluster/health?local=true", timeout=3) is not None


def health(timeout_s: int = 0, status: str = "green") -> dict[str, object] | None:
    """Cluster health from the first node that answers, waiting up to `timeout_s` for
    `status` with every node joined."""
    query = (f"/_cluster/health?wait_for_status={status}&wait_for_nodes={NODE_COUNT}"
             f"&timeout={timeout_s}s")
    for node in NODES:
        found = _get(f"{node.url}{query}", timeout=timeout_s + 5)
        if found is not None:
            return found
    return None


def cluster_ready() -> bool:
    """Every node joined and every shard copy assigned (or yellow while replicas recover)."""
    found = health()
    return (found is not None and found.get("number_of_nodes") == NODE_COUNT
            and found.get("status") in ("green", "yellow"))


CERTS = "certs"  # under the Elasticsearch home's config/ (it reads files only there)


def _make_certs(layout: Layout) -> None:
    """The transport CA and the nodes' certificate (made once; kept across starts)."""
    folder = layout.es_home / "config" / CERTS
    if (folder / "node.crt").exists():
        return
    if shutil.which("openssl") is None:
        native._apt_install("openssl")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    sign = ["-days", "3650", "-sha256"]
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
         "-out", "ca.crt", "-subj", f"/CN={CLUSTER_NAME} transport CA", *sign],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out",
         "node.csr", "-subj", f"/CN={CLUSTER_NAME} node"],
        ["openssl", "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "node.crt", "-extfile", "san.ext", *sign]):
        (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        made = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise StackError(f"openssl could not make the transport certificates: "
                             f"{made.stderr[-500:]}")
    for path in folder.iterdir():
        path.chmod(0o600)
    native._chown_tree(folder)


def _security() -> dict[str, str]:
    """Security settings of every node: on, with transport TLS, where the stack has secrets."""
    if _admin_secret() is None:
        return {"xpack.security.enabled": "false"}
    return {"xpack.security.enabled": "true", "xpack.security.http.ssl.enabled": "false",
            "xpack.security.transport.ssl.enabled": "true",
            "xpack.security.transport.ssl.verification_mode": "full",
            "xpack.security.transport.ssl.key": f"{CERTS}/node.key",
            "xpack.security.transport.ssl.certificate": f"{CERTS}/node.crt",
            "xpack.security.transport.ssl.certificate_authorities": f"{CERTS}/ca.crt"}


def _stamp(layout: Layout) -> Path:
    """The security settings the running nodes were started with."""
    return layout.state / "cluster" / "es-security.stamp"


def _settings(layout: Layout, node: EsNode) -> dict[str, str]:
    data = node.home(layout) / "data"
    settings = {
        "cluster.name": CLUSTER_NAME, "node.name": node.name, "network.host": "127.0.0.1",
        "http.port": str(node.http_port), "transport.port": str(node.transport_port),
        "discovery.seed_hosts": ",".join(f"127.0.0.1:{n.transport_port}" for n in NODES),
        "path.data": str(data), "path.logs": str(node.home(layout) / "logs"),
        **_security(),
        "node.processors": "1",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if not any(data.iterdir()):  # bootstrapping is for a brand-new cluster only
        settings["cluster.initial_master_nodes"] = ",".join(n.name for n in NODES)
    return settings


def _launch(layout: Layout, node: EsNode) -> subprocess.Popen[str]:
    """Start one node daemonized; the launcher exits once the node has started."""
    for sub in ("data", "logs"):
        (node.home(layout) / sub).mkdir(parents=True, exist_ok=True)
    native._chown_tree(node.home(layout))
    cmd = ["env", f"ES_JAVA_HOME={native.find_jdk()}", f"ES_JAVA_OPTS=-Xms{HEAP} -Xmx{HEAP}",
           str(layout.es_home / "bin" / "elasticsearch"), "-d", "-p",
           str(node.pidfile(layout)),
           *[f"-E{k}={v}" for k, v in _settings(layout, node).items()]]
    if native._is_root():
        cmd = ["runuser", "-u", native.SERVICE_USER, "--", *cmd]
    return subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _ensure_home(layout: Layout) -> None:
    if not (layout.es_home / "bin" / "elasticsearch").exists():
        native._unpack(native._fetch_distribution(layout), layout.state)
        native._chown_tree(layout.es_home)
    (layout.state / "cluster").mkdir(parents=True, exist_ok=True)
    native.chown_paths(layout.state / "cluster")  # running nodes' files are theirs already
    if _admin_secret() is not None:  # the file realm all nodes (and the single one) read
        native._es_users(layout, native.find_jdk(), security.ensure_secrets(layout.state))
        _make_certs(layout)
    keystore = layout.es_home / "config" / "elasticsearch.keystore"
    if not keystore.exists():  # created once here, not raced by three first boots
        native.run([str(layout.es_home / "bin" / "elasticsearch-keystore"), "create"],
                   as_service=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _await_ports(node: EsNode) -> None:
    """Our ports sit in the ephemeral range: while a node is down, an outgoing connection
    may borrow one for a while; wait for it to be released instead of failing the bind."""
    deadline = time.monotonic() + PORTS_FREE_WITHIN_S
    while not (_port_free(node.http_port) and _port_free(node.transport_port)):
        if time.monotonic() > deadline:
            raise StackError(f"ports {node.http_port}/{node.transport_port} of {node.name} "
                             f"stay in use by another process")
        time.sleep(1)


def _started(layout: Layout, node: EsNode, process: subprocess.Popen[str]) -> bool:
    startup = node.home(layout) / "startup.log"
    try:
        output, _ = process.communicate(timeout=START_WITHIN_S)
    except subprocess.TimeoutExpired:
        raise StackError(f"Elasticsearch node {node.name} did not start within "
                         f"{START_WITHIN_S}s; see {node.home(layout) / 'logs'}") from None
    startup.write_text(output)
    return process.returncode == 0


def start_nodes(layout: Layout, nodes: tuple[EsNode, ...] = NODES) -> None:
    """Start the given nodes that are not running, side by side, and wait until each has
    joined the cluster (all of them: green within GREEN_WITHIN_S)."""
    _ensure_home(layout)
    wanted = json.dumps(_security(), sort_keys=True)
    running = [node for node in NODES if node_pid(layout, node) is not None]
    stamp = _stamp(layout)
    if running and (not stamp.exists() or stamp.read_text() != wanted):
        print("  restarting the Elasticsearch nodes with the stack's security settings ...",
              flush=True)
        stop_nodes(layout)  # all of them: one cluster, one security setting
        nodes = NODES
    stamp.write_text(wanted)
    down = [node for node in nodes if node_pid(layout, node) is None]
    for attempt in range(LAUNCH_ATTEMPTS):
        for node in down:
            _await_ports(node)
        launching = {node: _launch(layout, node) for node in down}
        down = [node for node, process in launching.items()
                if not _started(layout, node, process)]
        if not down:
            break
        if attempt + 1 == LAUNCH_ATTEMPTS:
            node = down[0]
            raise StackError(f"Elasticsearch node {node.name} did not start; see "
                             f"{node.home(layout) / 'startup.log'} and "
                             f"{node.home(layout) / 'logs' / (CLUSTER_NAME + '.log')}")
    found = health(GREEN_WITHIN_S)
    if found is None or found.get("timed_out") or found.get("number_of_nodes") != NODE_COUNT:
        raise StackError(f"the Elasticsearch cluster did not turn green with {NODE_COUNT} nodes "
                         f"within {GREEN_WITHIN_S}s (health: {found}); see the logs under "
                         f"{layout.state / 'cluster'}")


def stop_node(layout: Layout, node: EsNode, signal_number: int = 15) -> None:
    """Stop one node (SIGTERM by default; fault tests send SIGKILL) and wait for it to go."""
    pid = node_pid(layout, node)
    if pid is None:
        return
    os.kill(pid, signal_number)
    deadline = time.monotonic() + 60
    while node_pid(layout, node) is not None:
        if time.monotonic() > deadline:
            raise StackError(f"Elasticsearch node {node.name} (pid {pid}) did not stop")
        time.sleep(0.2)


def stop_nodes(layout: Layout) -> None:
    for node in NODES:
        pid = node_pid(layout, node)
        if pid is not None:
            os.kill(pid, 15)
    for node in NODES:
        stop_node(layout, node)
