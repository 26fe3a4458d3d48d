"""The cluster stack takes the same users as the single one, and its Elasticsearch nodes talk
to each other over TLS with the stack's own certificates."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request

import pytest

from infra import es_cluster, redis_cluster
from infra.native import Layout


def _status_anonymous(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_every_node_refuses_anonymous_requests(whole_cluster: dict[str, str]) -> None:
    assert [_status_anonymous(node.url) for node in es_cluster.NODES] == [401] * 3
    replies = [redis_cluster.cli(port, "ping", anonymous=True) for port in redis_cluster.PORTS]
    assert all(reply.startswith("NOAUTH") for reply in replies), replies
    assert all(redis_cluster.node_running(port) for port in redis_cluster.PORTS)


def test_transport_between_nodes_is_tls_with_the_stacks_own_certificate(
        whole_cluster: dict[str, str]) -> None:
    certs = Layout.default().es_home / "config" / es_cluster.CERTS
    trusting = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    for node in es_cluster.NODES:
        with socket.create_connection(("127.0.0.1", node.transport_port), timeout=10) as raw, \
                trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            subject = dict(part[0] for part in tls.getpeercert()["subject"])
            assert subject["commonName"] == f"{es_cluster.CLUSTER_NAME} node"
    # a client trusting only the usual authorities cannot verify a node: not a public cert
    with socket.create_connection(("127.0.0.1", es_cluster.NODES[0].transport_port),
                                  timeout=10) as raw, pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
