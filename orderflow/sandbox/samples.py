"""Sample `order.created` events for the demo, the tests, the benchmark and the chaos run.

Shapes mix as real traffic would: Zakeke-only (customized lines), Smake-only (print
production), mixed (both), and plain orders that only Reevoo receives. Deterministic for a
seed, so a failing run can be replayed.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

SHAPES = ("zakeke", "smake", "mixed", "plain")


def sample_order_event(index: int, rng: random.Random, *, shape: str | None = None,
                       prefix: str = "DEMO", placed_at: datetime | None = None) -> dict[str, Any]:
    """One contract-valid `order.created` v1 event as a JSON-ready dict."""
    shape = shape or rng.choice(SHAPES)
    order_id = f"{prefix}-{index:06d}"
    placed = placed_at or datetime.now(UTC).replace(microsecond=0)
    guest = rng.random() < 0.3
    lines: list[dict[str, Any]] = []

    def add_line(sku: str, price: str, **extra: Any) -> None:
        lines.append({"line_id": f"L{len(lines) + 1}", "sku": sku, "name": sku.title(),
                      "quantity": rng.randint(1, 3), "unit_price": price, **extra})

    if shape in ("zakeke", "mixed"):
        design = f"000-{uuid.UUID(int=rng.getrandbits(128)).hex[:22]}"
        with_price = rng.random() < 0.7
        add_line("TSHIRT-BLK-M", "12.00", customization={
            "provider": "zakeke", "design_id": design, "modification_id": None,
            **({"design_unit_price": "4.00"} if with_price else {})},
            fulfilment={"provider": "smake", "variant_id": 25} if shape == "mixed" else None,
            metadata={"colour": "black"})
        if rng.random() < 0.4:
            add_line("MUG-01", "9.90", customization={
                "provider": "zakeke", "composition_id": f"315-{rng.randrange(10**6):06d}"})
    if shape in ("smake", "mixed"):
        if rng.random() < 0.5:
            add_line("CAP-02", "15.00", fulfilment={"provider": "smake", "sku": "CAP-02-SMK"})
        else:
            add_line("HOODIE-GRY-L", "39.00", fulfilment={"provider": "smake", "variant_id": 31})
    if shape == "plain" or not lines:
        add_line("BOOK-9", "10.00")
    total = sum(int(line["quantity"]) * float(line["unit_price"]) for line in lines)
    order: dict[str, Any] = {
        "order_id": order_id,
        "order_number": str(100000 + index),
        "placed_at": placed.isoformat().replace("+00:00", "Z"),
        "currency": "EUR",
        "total": f"{total:.2f}",
        "session_id": f"sess-{rng.randrange(16**6):06x}",
        "locale": rng.choice(["en-GB", "de-DE", "it-IT"]),
        "sales_channel": rng.choice(["webshop-de", "webshop-uk"]),
        "customer": {
            "customer_id": None if guest else f"C-{rng.randrange(10**5):05d}",
            "email": f"customer{index}@example.com", "title": "Ms", "first_name": "Ann",
            "last_name": "Example", "country": "DE",
        },
        "shipping_address": {
            "first_name": "Ann", "last_name": "Example", "street1": "123 Main St", "zip": "12345",
            "city": "Anytown", "country_code": "DE", "phone": "+49 123 456 789",
            "email": f"customer{index}@example.com",
        },
        "billing_address": None,
        "shipping_method": "standard",
        "payment_method": "invoice",
        "lines": [{k: v for k, v in line.items() if v is not None} for line in lines],
    }
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": "order.created",
        "schema_version": 1,
        "occurred_at": (placed + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
        "order": order,
    }


def sample_orders(count: int, seed: int = 7, *, prefix: str = "DEMO",
                  shape: str | None = None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [sample_order_event(i, rng, shape=shape, prefix=prefix) for i in range(count)]


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) as upstream publishes them: key = order_id."""
    return event["order"]["order_id"].encode(), json.dumps(event).encode()
