"""Routing (contract "Routing"): which vendors must act on an order."""

from __future__ import annotations

import os
from typing import Any

import pytest
from testkit import an_order

from orderflow.config.settings import ReevooSettings, Settings, SmakeSettings, ZakekeSettings
from orderflow.consumer.routing import route, waits_for
from orderflow.contracts.events import Vendor

ZAKEKE, SMAKE, REEVOO = Vendor.ZAKEKE, Vendor.SMAKE, Vendor.REEVOO


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ORDERFLOW_"):
            monkeypatch.delenv(name)


def settings(*, zakeke: bool = True, smake: bool = True, reevoo: bool = True,
             sales_channels: str | None = None) -> Settings:
    return Settings(
        zakeke=ZakekeSettings(enabled=zakeke),
        smake=SmakeSettings(enabled=smake),
        reevoo=ReevooSettings(enabled=reevoo, sales_channels=sales_channels),
    )


def line(line_id: str, **fields: Any) -> dict[str, Any]:
    return {"line_id": line_id, "sku": "S", "quantity": 1, "unit_price": "1.00", **fields}


DESIGN = {"provider": "zakeke", "design_id": "d-1"}
COMPOSITION = {"provider": "zakeke", "composition_id": "c-1"}
SMAKE_LINE = {"provider": "smake", "variant_id": 25}


def test_the_full_example_goes_to_all_three_vendors() -> None:
    assert route(an_order(), settings()) == [ZAKEKE, SMAKE, REEVOO]


def test_the_minimal_example_goes_to_reevoo_only() -> None:
    assert route(an_order("order-created-minimal.json"), settings()) == [REEVOO]


@pytest.mark.parametrize(("lines", "expected"), [
    ([line("1", customization=DESIGN)], [ZAKEKE, REEVOO]),
    ([line("1", customization=COMPOSITION)], [ZAKEKE, REEVOO]),
    ([line("1"), line("2", customization=DESIGN)], [ZAKEKE, REEVOO]),
    ([line("1", fulfilment=SMAKE_LINE)], [SMAKE, REEVOO]),
    ([line("1", fulfilment={"provider": "smake", "sku": "X"}), line("2")], [SMAKE, REEVOO]),
    ([line("1", fulfilment=SMAKE_LINE), line("2", customization=DESIGN)], [ZAKEKE, SMAKE, REEVOO]),
    ([line("1"), line("2")], [REEVOO]),
])
def test_vendors_follow_the_lines(lines: list[dict[str, Any]], expected: list[Vendor]) -> None:
    assert route(an_order(lines=lines), settings()) == expected


def test_smake_lines_without_a_shipping_address_still_make_a_smake_job() -> None:
    """The pair must end `rejected`, visibly; routing must not drop it."""
    assert route(an_order(shipping_address=None), settings()) == [ZAKEKE, SMAKE, REEVOO]


@pytest.mark.parametrize(("disabled", "expected"), [
    ("zakeke", [SMAKE, REEVOO]),
    ("smake", [ZAKEKE, REEVOO]),
    ("reevoo", [ZAKEKE, SMAKE]),
])
def test_a_disabled_vendor_gets_nothing(disabled: str, expected: list[Vendor]) -> None:
    enabled = {vendor: vendor != disabled for vendor in ("zakeke", "smake", "reevoo")}
    assert route(an_order(), settings(zakeke=enabled["zakeke"], smake=enabled["smake"],
                                   reevoo=enabled["reevoo"])) == expected


def test_every_vendor_disabled_routes_nowhere() -> None:
    assert route(an_order(), settings(zakeke=False, smake=False, reevoo=False)) == []


@pytest.mark.parametrize(("channels", "sales_channel", "to_reevoo"), [
    (None, "webshop-de", True),
    (None, None, True),
    ("all", "webshop-de", True),
    ("webshop-de", "webshop-de", True),
    ("webshop-de,app", "app", True),
    ("app", "webshop-de", False),
    ("webshop-de", None, False),
    ("webshop-de", "WEBSHOP-DE", False),
])
def test_reevoo_sales_channels(channels: str | None, sales_channel: str | None, to_reevoo: bool) -> None:
    routed = route(an_order(sales_channel=sales_channel), settings(sales_channels=channels))
    assert routed == ([ZAKEKE, SMAKE, REEVOO] if to_reevoo else [ZAKEKE, SMAKE])


def test_sales_channels_do_not_affect_the_other_vendors() -> None:
    only_zakeke = an_order(lines=[line("1", customization=DESIGN)], sales_channel="pos")
    assert route(only_zakeke, settings(sales_channels="webshop-de")) == [ZAKEKE]


def test_reevoo_waits_for_smake_only_when_submitted_on_fulfilment() -> None:
    """Contract: with ORDERFLOW_REEVOO__SUBMIT_ON=fulfilled (default placed) an order that has
    a Smake pair goes to Reevoo once that pair completed; orders without one go at once."""
    placed = settings()
    fulfilled = placed.model_copy(update={"reevoo": placed.reevoo.model_copy(
        update={"submit_on": "fulfilled"})})
    printed = an_order(lines=[line("1", fulfilment=SMAKE_LINE)])
    assert waits_for(printed, [SMAKE, REEVOO], placed) == {}
    assert waits_for(printed, [SMAKE, REEVOO], fulfilled) == {REEVOO: SMAKE}
    assert waits_for(printed, [REEVOO], fulfilled) == {}


def test_a_line_designed_at_zakeke_and_produced_by_smake_makes_smake_wait_for_zakeke() -> None:
    """Contract, "One order, one flow": the order's Smake pair waits until Zakeke's
    print-ready files for each such line exist. Lines with one of the two go at once."""
    example = an_order()  # its line L1: designed at Zakeke, produced by Smake
    assert waits_for(example, [ZAKEKE, SMAKE, REEVOO], settings()) == {SMAKE: ZAKEKE}
    apart = an_order(lines=[line("1", customization=DESIGN), line("2", fulfilment=SMAKE_LINE)])
    assert waits_for(apart, [ZAKEKE, SMAKE, REEVOO], settings()) == {}
    assert waits_for(example, [SMAKE, REEVOO], settings()) == {}, "no Zakeke pair: nothing to wait for"
