"""A failed bulk item is poison only when the document itself is at fault."""

from __future__ import annotations

import pytest

from projectors.search_sink import item_failure
from projectors.sinks import PoisonEvent, SinkGone, SinkUnavailable


def test_an_index_deleted_under_a_batch_means_the_read_model_is_gone() -> None:
    error = {"type": "index_not_found_exception", "reason": "no such index [orders-v1]"}
    assert isinstance(item_failure(238, 404, error), SinkGone)


@pytest.mark.parametrize(("status", "kind"), [
    (403, "cluster_block_exception"),  # flood-stage disk watermark: index read-only
    (400, "index_closed_exception"),
    (403, "security_exception"),
    (429, "es_rejected_execution_exception"),
    (503, "unavailable_shards_exception"),
])
def test_a_refused_or_blocked_index_is_an_outage(status: int, kind: str) -> None:
    assert isinstance(item_failure(7, status, {"type": kind, "reason": "x"}), SinkUnavailable)


def test_a_document_the_mapping_rejects_is_poison_at_its_position() -> None:
    failure = item_failure(42, 400, {"type": "document_parsing_exception", "reason": "bad"})
    assert isinstance(failure, PoisonEvent)
    assert failure.position == 42 and "document_parsing_exception" in failure.error
