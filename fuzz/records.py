"""Hostile input records: what a careless or malicious upstream producer could publish.

Three sources, each record tagged with what must become of it:
- `accept`: valid `order.created` v1 events built to be valid, from hypothesis strategies
  (any text in free fields, ids with slashes, spaces and percent signs, dates from year 1
  to 9999 with offsets, 1 to 500 lines) and from the sandbox's samples;
- `dead_letter`: a hostile kind each, named (huge integers, nesting past the recursion
  limit, NaN and Infinity, lone surrogates, non-UTF-8, repeated keys, records just over
  each size limit, 501 lines, unsafe ids, impossible dates, wrong types);
- `either`: random mutations of valid events (bytes flipped, cut, repeated; hostile tokens
  spliced in; leaves replaced), whose fate is not known in advance, only that it is one.

Deterministic for a seed. Limits are the run's settings (`Limits`): records are sized
against them so that "just under" and "just over" mean something.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from orderflow.sandbox.samples import sample_order_event

Expect = Literal["accept", "dead_letter", "either"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_record_bytes: int      # ORDERFLOW_KAFKA__MAX_RECORD_BYTES
    max_message_bytes: int     # ORDERFLOW_KAFKA__MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class FuzzRecord:
    kind: str
    expect: Expect
    key: bytes | None
    value: bytes | None


def dumps(event: Any, rng: random.Random | None = None) -> bytes:
    ascii_only = rng.random() < 0.5 if rng is not None else False
    return json.dumps(event, ensure_ascii=ascii_only).encode("utf-8")


# ----------------------------------------------------------------------------- valid events


_ID_ALPHABET = st.characters(blacklist_categories=("Cc", "Cs"))  # what an id may hold


def _safe_id(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_ID_ALPHABET, min_size=1, max_size=max_size).filter(lambda v: v not in (".", ".."))


@st.composite
def _placed_at(draw: st.DrawFn) -> str:
    offset = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    when = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    zone = timezone(timedelta(minutes=offset))
    text = when.replace(tzinfo=zone).isoformat()
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


_money = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False,
                     allow_infinity=False).map(lambda d: format(d, "f"))
_free_text = st.text(st.characters(codec="utf-8"), max_size=40)  # any text UTF-8 can carry


@st.composite
def _line(draw: st.DrawFn, index: int) -> dict[str, Any]:
    line: dict[str, Any] = {"line_id": f"L{index}", "sku": draw(st.text(min_size=1, max_size=20)
                                                                 .filter(str.strip) | st.just("SKU")),
                            "quantity": draw(st.integers(1, 10**6)), "unit_price": draw(_money)}
    if draw(st.booleans()):
        line["name"] = draw(_free_text)
    which = draw(st.sampled_from(["none", "design", "composition"]))
    if which == "design":
        line["customization"] = {"provider": "zakeke", "design_id": draw(_safe_id(40)),
                                 "modification_id": draw(st.none() | _safe_id(20)),
                                 "design_unit_price": draw(st.none() | _money)}
    elif which == "composition":
        line["customization"] = {"provider": "zakeke", "composition_id": draw(_safe_id(40))}
    if draw(st.booleans()):
        line["fulfilment"] = {"provider": "smake",
                              **draw(st.sampled_from([{"variant_id": 25}, {"sku": "CAP-02-SMK"}]))}
    if draw(st.booleans()):
        line["metadata"] = draw(st.dictionaries(_free_text, _free_text, max_size=3))
    return line


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 8) | st.just(500))
    lines = [draw(_line(i)) for i in range(count)] if count < 500 else \
        [{"line_id": f"L{i}", "sku": "S", "quantity": 1, "unit_price": "1.00"} for i in range(500)]
    order: dict[str, Any] = {
        "order_id": draw(_safe_id(64)),
        "placed_at": draw(_placed_at()),
        "currency": draw(st.text(string.ascii_uppercase, min_size=3, max_size=3)),
        "total": draw(_money),
        "customer": {"email": draw(st.text(min_size=1, max_size=40).filter(str.strip) | st.emails()),
                     "country": draw(st.none() | st.sampled_from(["GB", "gb", "DE"]))},
        "lines": lines,
    }
    for name in ("order_number", "session_id", "locale", "sales_channel", "shipping_method",
                 "payment_method"):
        if draw(st.booleans()):
            order[name] = draw(_free_text)
    if draw(st.booleans()):
        order["shipping_address"] = {"street1": draw(_free_text), "country_code": "DE"}
    return {"event_id": draw(_safe_id(40)), "event_type": "order.created", "schema_version": 1,
            "occurred_at": draw(_placed_at()), "order": order}


def hypothesis_events(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` valid events from the strategy, as hypothesis generates them (its edge cases
    first), without shrinking: a collection, not a test."""
    found: list[dict[str, Any]] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(valid_events())
    def collect(event: dict[str, Any]) -> None:
        found.append(event)

    random.Random(seed)  # the derandomized run is the same for every seed; mix below
    collect()
    return found


# ----------------------------------------------------------------------------- hostile kinds


def _with_member(event: dict[str, Any], raw: str) -> bytes:
    """The event with one more top-level member whose value is `raw` JSON text."""
    text = json.dumps(event)
    return (text[:-1] + ', "x": ' + raw + "}").encode()


def _padded(event: dict[str, Any], size: int) -> bytes:
    """The event padded (in a line's metadata, which the tracking record keeps) to `size`
    bytes exactly."""
    event = json.loads(json.dumps(event))
    line = event["order"]["lines"][0]
    line["metadata"] = {"pad": ""}
    base = len(json.dumps(event).encode())
    line["metadata"]["pad"] = "p" * max(0, size - base)
    return json.dumps(event).encode()


HostileKind = Callable[[random.Random, dict[str, Any], Limits], bytes | None]
# A builder that always makes a value (a hostile kind may also be a record without one).
Builder = Callable[[random.Random, dict[str, Any], Limits], bytes]


def _order_field(name: str, value: Any) -> Builder:
    def build(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
        event = json.loads(json.dumps(event))
        event["order"][name] = value
        return dumps(event, rng)
    return build


def _line_field(name: str, value: Any) -> Builder:
    def build(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
        event = json.loads(json.dumps(event))
        event["order"]["lines"][0][name] = value
        return dumps(event, rng)
    return build


def _design_id(value: str) -> Builder:
    def build(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
        event = json.loads(json.dumps(event))
        event["order"]["lines"][0]["customization"] = {"provider": "zakeke", "design_id": value}
        return dumps(event, rng)
    return build


def _deep(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    depth = min(rng.randint(1_100, 100_000), limits.max_record_bytes // 2 - 200)
    return _with_member(event, "[" * depth + "]" * depth)


def _surrogate_bytes(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    raw = dumps(event)
    return raw.replace(b'"order.created"', b'"order.created\xed\xa0\x80"', 1)


def _non_utf8(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    raw = bytearray(dumps(event))
    raw[rng.randrange(len(raw))] = rng.choice([0x80, 0xC0, 0xFF, 0xFE, 0xF5])
    return bytes(raw)


def _repeated_key(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    text = json.dumps(event)
    where = rng.choice(['"order": {', '"event_id": '])
    if where.startswith('"order"'):
        return text.replace('"order": {', '"order": {"order_id": "DUP", ', 1).encode()
    return (text[:-1] + ', "event_id": "other"}').encode()


def _over_input_limit(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    return _padded(event, limits.max_record_bytes + rng.choice([1, 2, 100, 5_000]))


def _tracking_too_large(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    # Valid, under the input limit, but its tracking record would not leave room for updates.
    # Under limits that leave no such size (the defaults do not), the nearest hostile thing:
    # a valid order just over the input limit.
    low = limits.max_message_bytes - 8_000
    if low > limits.max_record_bytes:
        return _padded(event, limits.max_record_bytes + 1)
    return _padded(event, rng.randint(low, min(limits.max_record_bytes, low + 6_000)))


def _too_many_lines(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
    event = json.loads(json.dumps(event))
    event["order"]["lines"] = [{"line_id": f"L{i}", "sku": "S", "quantity": 1,
                                "unit_price": "1.00"} for i in range(501)]
    return dumps(event, rng)


def cancellation_of(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A valid `order.cancelled` v1 for the event's order."""
    cancel: dict[str, Any] = {
        "event_id": f"cxl-{rng.getrandbits(64):016x}", "event_type": "order.cancelled",
        "schema_version": 1, "occurred_at": "2026-11-22T11:02:10+01:00",
        "order_id": event["order"]["order_id"]}
    if rng.random() < 0.7:
        cancel["reason"] = rng.choice(["customer asked to cancel", "", "ü" * 500, "fraud\nsuspected"])
    return cancel


def _cancellation(**changes: Any) -> HostileKind:
    def build(rng: random.Random, event: dict[str, Any], limits: Limits) -> bytes:
        cancel = cancellation_of(event, rng)
        for name, value in changes.items():
            if value is _ABSENT:
                cancel.pop(name, None)
            else:
                cancel[name] = value
        return dumps(cancel, rng)
    return build


_ABSENT = object()

HOSTILE: dict[str, HostileKind] = {
    "cancel_reason_too_long": _cancellation(reason="x" * 501),
    "cancel_without_event_id": _cancellation(event_id=_ABSENT),
    "cancel_without_order_id": _cancellation(order_id=_ABSENT),
    "cancel_order_id_dotdot": _cancellation(order_id=".."),
    "cancel_order_id_too_long": _cancellation(order_id="A" * 65),
    "cancel_schema_version_2": _cancellation(schema_version=2),
    "cancel_time_no_offset": _cancellation(occurred_at="2026-11-22T11:02:10"),
    "cancel_event_type_typo": _cancellation(event_type="order.canceled"),
    "huge_integer": lambda rng, e, _: _with_member(e, "9" * rng.randint(4_301, 9_000)),
    "huge_integer_quantity": lambda rng, e, lim: _line_field("quantity", "@BIG@")(rng, e, lim)
    .replace(b'"@BIG@"', b"9" * 5_000),
    "deep_nesting": _deep,
    "nan": lambda rng, e, _: _with_member(e, rng.choice(["NaN", "[NaN]", '{"a": NaN}'])),
    "infinity": lambda rng, e, _: _with_member(e, rng.choice(["Infinity", "-Infinity", "1e999"])),
    "lone_surrogate_escape": lambda rng, e, _: _with_member(
        e, rng.choice(['"\\ud800"', '"\\udfff"', '["a\\ud83d"]', '{"\\udc00": 1}'])),
    "surrogate_bytes": _surrogate_bytes,
    "non_utf8": _non_utf8,
    "latin1": lambda rng, e, _: json.dumps({**e, "x": "café"}, ensure_ascii=False).encode("latin-1"),
    "repeated_key": _repeated_key,
    "over_input_limit": _over_input_limit,
    "tracking_too_large": _tracking_too_large,
    "too_many_lines": _too_many_lines,
    "order_id_dot": _order_field("order_id", "."),
    "order_id_dotdot": _order_field("order_id", ".."),
    "order_id_nul": _order_field("order_id", "A\x00B"),
    "order_id_newline": _order_field("order_id", "A\r\nX-Injected: 1"),
    "order_id_too_long": _order_field("order_id", "A" * 65),
    "design_id_dotdot": _design_id(".."),
    "design_id_tab": _design_id("D\t1"),
    "placed_at_no_offset": _order_field("placed_at", "2026-11-22T10:15:29"),
    "placed_at_impossible": _order_field("placed_at", "2026-02-30T10:15:29Z"),
    "placed_at_year_0": _order_field("placed_at", "0000-01-01T00:00:00Z"),
    "total_float": _order_field("total", 57.2),
    "quantity_zero": _line_field("quantity", 0),
    "quantity_text": _line_field("quantity", "two"),
    "no_lines": _order_field("lines", []),
    "empty": lambda rng, e, _: b"",
    "null_value": lambda rng, e, _: None,
    "json_null": lambda rng, e, _: b"null",
    "not_an_object": lambda rng, e, _: rng.choice([b"[]", b"42", b'"order"', b"true"]),
    "truncated": lambda rng, e, _: dumps(e)[: rng.randint(1, len(dumps(e)) - 1)],
    "bom": lambda rng, e, _: b"\xef\xbb\xbf" + dumps(e),
    "random_bytes": lambda rng, e, _: rng.randbytes(rng.randint(1, 2_000)),
}

# Valid records at the edges, each of which must be accepted.
def _edge_valid(rng: random.Random, event: dict[str, Any], limits: Limits) -> tuple[str, bytes]:
    kinds: list[tuple[str, Callable[[], bytes]]] = [
        ("year_1_with_offset", lambda: _order_field("placed_at", "0001-01-01T00:30:00+01:00")(
            rng, event, limits)),
        ("year_9999_with_offset", lambda: _order_field("placed_at", "9999-12-31T23:30:00-01:00")(
            rng, event, limits)),
        ("id_with_slash_and_percent", lambda: _order_field("order_id", "A/B %2e%2e ü")(
            rng, event, limits)),
        ("id_of_64", lambda: _order_field("order_id", "Z" * 64)(rng, event, limits)),
        ("surrogate_pair", lambda: _with_member(event, '"\\ud83d\\ude00"')),
        ("integer_of_100_digits", lambda: _with_member(event, "9" * 100)),
        ("nesting_of_100", lambda: _with_member(event, "[" * 100 + "]" * 100)),
        ("well_under_the_limits", lambda: _padded(event, limits.max_message_bytes // 3)),
    ]
    name, build = rng.choice(kinds)
    return name, build()


# ----------------------------------------------------------------------------- mutations

_SPLICES = [b"NaN", b"\"\\ud800\"", b"[[[[[[[[", b"9" * 5000, b"\xff", b"\x00", b"{", b"}",
            b",", b"\"", b"\\", b"null", b"-", b"1e999", b"\xed\xa0\x80", b"\"order\":", b"[]"]


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        if not data:
            data.extend(rng.choice(_SPLICES))
            continue
        at = rng.randrange(len(data))
        action = rng.randrange(6)
        if action == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif action == 1:
            del data[at: at + rng.randint(1, 64)]
        elif action == 2:
            end = min(len(data), at + rng.randint(1, 256))
            data[at:at] = data[at:end]
        elif action == 3:
            data[at:at] = rng.choice(_SPLICES)
        elif action == 4:
            data = data[:at]
        else:
            data[at] = rng.randrange(256)
    return bytes(data)


def mutate_leaf(rng: random.Random, event: dict[str, Any]) -> bytes:
    """Replace one leaf of the event (anywhere) by a hostile value, or drop one key."""
    event = json.loads(json.dumps(event))
    node: Any = event
    while True:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if not children:
            return dumps(event, rng)
        name, child = rng.choice(children)
        if isinstance(child, dict | list) and child and rng.random() < 0.75:
            node = child
            continue
        if isinstance(node, dict) and rng.random() < 0.2:
            del node[name]
        else:
            node[name] = rng.choice([None, "", ".", "..", 0, -1, 2**63, 1.5, True, [], {},
                                     "x" * 300, "\x00", "🙂", "0001-01-01T00:00:00+01:00"])
        return dumps(event, rng)


# ----------------------------------------------------------------------------- the stream


def _keys(rng: random.Random, event: dict[str, Any]) -> bytes | None:
    choice = rng.random()
    if choice < 0.85:
        return str(event["order"]["order_id"]).encode("utf-8", "replace")
    if choice < 0.9:
        return None
    if choice < 0.95:
        return rng.randbytes(rng.randint(0, 40))  # not UTF-8, as a key may be
    return b""


def generate(count: int, seed: int, limits: Limits, *, hypothesis_share: float = 0.05
             ) -> Iterator[FuzzRecord]:
    """`count` records: about 30% valid (some of them from hypothesis), 35% of the hostile
    kinds in turn (every kind at least once when count allows), 35% mutations."""
    rng = random.Random(seed)
    from_hypothesis = hypothesis_events(max(1, int(count * hypothesis_share)), seed)
    samples = [sample_order_event(i, rng, prefix=f"FZ{seed}") for i in range(200)]
    kinds = list(HOSTILE)
    hostile_turn = 0
    for n in range(count):
        base = samples[n % len(samples)]
        roll = rng.random()
        if n < len(from_hypothesis):
            event = from_hypothesis[n]
            yield FuzzRecord("hypothesis_valid", "accept", _keys(rng, event), dumps(event, rng))
        elif roll < 0.04:
            # A customer's cancellation: of an order of the run, or of one never seen.
            event = json.loads(json.dumps(base))
            event["order"]["order_id"] = f"FZ{seed}-{rng.randrange(max(1, n))}"
            cancel = cancellation_of(event, rng)
            yield FuzzRecord("cancellation_valid", "accept", _keys(rng, event), dumps(cancel, rng))
        elif roll < 0.06:
            cancel = cancellation_of(base, rng)
            yield FuzzRecord("cancellation_mutation", "either", _keys(rng, base),
                             mutate(rng, dumps(cancel)))
        elif roll < 0.25:
            event = json.loads(json.dumps(base))
            event["order"]["order_id"] = f"FZ{seed}-{n}"
            yield FuzzRecord("sample_valid", "accept", _keys(rng, event), dumps(event, rng))
        elif roll < 0.30:
            event = json.loads(json.dumps(base))
            event["order"]["order_id"] = f"FZ{seed}-{n}"
            kind, value = _edge_valid(rng, event, limits)
            yield FuzzRecord(kind, "accept", _keys(rng, event), value)
        elif roll < 0.65 or hostile_turn < len(kinds):
            kind = kinds[hostile_turn % len(kinds)]
            hostile_turn += 1
            event = json.loads(json.dumps(base))
            event["order"]["order_id"] = f"FZ{seed}-{n}"
            yield FuzzRecord(kind, "dead_letter", _keys(rng, event), HOSTILE[kind](rng, event, limits))
        elif roll < 0.85:
            yield FuzzRecord("byte_mutation", "either", _keys(rng, base), mutate(rng, dumps(base)))
        else:
            yield FuzzRecord("leaf_mutation", "either", _keys(rng, base), mutate_leaf(rng, base))


__all__ = ["HOSTILE", "FuzzRecord", "Limits", "generate", "mutate", "valid_events"]

_ = UTC  # dates are built with explicit offsets above
