"""The search index's cluster layout comes from Settings; the defaults are a single node's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.kernel.readmodels import SearchIndexOptions
from app.kernel.settings import Settings, elasticsearch_hosts
from projectors.documents import index_body

DSN = "postgresql://postgres@127.0.0.1:1/none"


def test_defaults_are_one_shard_no_replica_one_active_copy() -> None:
    options = SearchIndexOptions.of(Settings(database_url=DSN))
    assert options == SearchIndexOptions(shards=1, replicas=0, wait_for_active_shards="1",
                                         refresh_interval="250ms")
    assert index_body(options)["settings"]["number_of_shards"] == 1
    assert index_body(options)["settings"]["number_of_replicas"] == 0
    assert index_body(options)["settings"]["refresh_interval"] == "250ms"


def test_shards_replicas_and_active_copies_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_SEARCH_SHARDS", "3")
    monkeypatch.setenv("ORDERS_SEARCH_REPLICAS", "1")
    monkeypatch.setenv("ORDERS_SEARCH_WAIT_FOR_ACTIVE_SHARDS", "all")
    monkeypatch.setenv("ORDERS_SEARCH_REFRESH_INTERVAL", "1s")
    options = SearchIndexOptions.of(Settings(database_url=DSN))
    assert options == SearchIndexOptions(shards=3, replicas=1, wait_for_active_shards="all",
                                         refresh_interval="1s")
    body = index_body(options)
    assert (body["settings"]["number_of_shards"], body["settings"]["number_of_replicas"],
            body["settings"]["refresh_interval"]) == (3, 1, "1s")
    assert body["mappings"]["dynamic"] == "strict"  # the mapping file is kept whole


@pytest.mark.parametrize("name, value", [("ORDERS_SEARCH_SHARDS", "0"),
                                         ("ORDERS_SEARCH_REPLICAS", "-1"),
                                         ("ORDERS_SEARCH_WAIT_FOR_ACTIVE_SHARDS", "0"),
                                         ("ORDERS_SEARCH_WAIT_FOR_ACTIVE_SHARDS", "most"),
                                         # "-1" would leave a live batch waiting forever
                                         ("ORDERS_SEARCH_REFRESH_INTERVAL", "-1"),
                                         ("ORDERS_SEARCH_REFRESH_INTERVAL", "0s")])
def test_an_impossible_layout_is_refused(monkeypatch: pytest.MonkeyPatch, name: str,
                                         value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(database_url=DSN)


def test_elasticsearch_url_takes_one_node_or_several() -> None:
    assert elasticsearch_hosts("http://127.0.0.1:59200") == ["http://127.0.0.1:59200"]
    assert elasticsearch_hosts(" http://a:1, http://b:2 ,http://c:3,") == [
        "http://a:1", "http://b:2", "http://c:3"]
    assert Settings(database_url=DSN, elasticsearch_url="http://a:1,http://b:2"
                    ).elasticsearch_hosts == ["http://a:1", "http://b:2"]
    with pytest.raises(ValueError):
        elasticsearch_hosts(" , ")
