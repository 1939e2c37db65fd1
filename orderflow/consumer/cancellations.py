"""The cancellations this replica knows (contract, "order.cancelled"): every `cancel/<order>`
record of the control topic, read whole by every replica (contracts/control.py). Pure
bookkeeping, no I/O: the control reader fills it, the intake adds what it forwards, and the
engine asks it before it sends anything (an order whose cancellation came first is never
sent) and when an order's pairs come into its hands (a partition restored, an order read).
"""

from __future__ import annotations

from orderflow.contracts.control import Cancel


class Cancellations:
    """Order id -> the first cancellation read for it."""

    def __init__(self) -> None:
        self._by_order: dict[str, Cancel] = {}

    def note(self, cancel: Cancel) -> bool:
        """Keep the order's first cancellation; True when this one is it (a repeat, or a
        later cancellation of the same order, changes nothing)."""
        if cancel.order_id in self._by_order:
            return False
        self._by_order[cancel.order_id] = cancel
        return True

    def of(self, order_id: str) -> Cancel | None:
        return self._by_order.get(order_id)

    def all(self) -> list[Cancel]:
        return list(self._by_order.values())

    def forget(self, order_id: str) -> None:
        self._by_order.pop(order_id, None)

    def older_than(self, at: float) -> list[Cancel]:
        return [cancel for cancel in self._by_order.values() if cancel.at < at]
