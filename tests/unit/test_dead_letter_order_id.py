"""The dead-letter log line names the order id when the refused record had one, so an
operator searching the logs by order id finds why it was refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orderflow.consumer.dead_letters import order_id_in as _order_id_in


def test_the_order_id_inside_the_value_wins_then_the_key() -> None:
    value = b'{"event_type": "order.created", "order": {"order_id": "A-1", "lines": []}}'
    assert _order_id_in(value, b"KEY-1") == "A-1"
    assert _order_id_in(b"{not json", b"KEY-1") == "KEY-1"
    assert _order_id_in(b'{"order": {"order_id": 7}}', None) is None
    assert _order_id_in(None, None) is None
    assert _order_id_in(b"[1]", b"\xff\xfe") == "\ufffd\ufffd"
    assert len(_order_id_in(b'{"order": {"order_id": "' + b"x" * 5000 + b'"}}', None) or "") == 200


@given(value=st.one_of(st.none(), st.binary(max_size=200)), key=st.one_of(st.none(), st.binary(max_size=50)))
def test_never_raises(value: bytes | None, key: bytes | None) -> None:
    found = _order_id_in(value, key)
    assert found is None or 0 < len(found) <= 200
