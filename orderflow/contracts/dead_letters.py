"""The dead-letter record's headers: the one table of their names and meanings.

The contract fixes the six required ones; the optional ones are additions that operators
and `orderflow dlq` read. Every header value is a UTF-8 string, bounded in length.
"""

from __future__ import annotations

ERROR_CLASS = "orderflow.error.class"
ERROR_MESSAGE = "orderflow.error.message"
ORIGINAL_TOPIC = "orderflow.original.topic"
ORIGINAL_PARTITION = "orderflow.original.partition"
ORIGINAL_OFFSET = "orderflow.original.offset"
FAILED_AT = "orderflow.failed_at"
# Optional.
ERROR_REASON = "orderflow.error.reason"
VALUE_OMITTED = "orderflow.value.omitted"
KEY_OMITTED = "orderflow.key.omitted"

REQUIRED: dict[str, str] = {
    ERROR_CLASS: "Why the record was refused, as an error class name "
                 "(for example JSONDecodeError, ValidationError, RecordTooLarge).",
    ERROR_MESSAGE: "The explanation in words (for a schema error, the offending fields).",
    ORIGINAL_TOPIC: "The topic the record was read from.",
    ORIGINAL_PARTITION: "Its partition, in decimal digits.",
    ORIGINAL_OFFSET: "Its offset, in decimal digits.",
    FAILED_AT: "When orderflow refused it, RFC 3339 in UTC.",
}
OPTIONAL: dict[str, str] = {
    ERROR_REASON: "The refusal as one word, as in orderflow_dead_letters_total{reason}: empty, "
                  "oversized, invalid_utf8, invalid_json, schema, too_large or internal.",
    VALUE_OMITTED: "Present when the original value was too large for the dead-letter topic: "
                   "its size in bytes, in decimal digits. The value is then empty; the input "
                   "topic still holds the record at the named offset.",
    KEY_OMITTED: "Likewise for a key too large to carry: its size in bytes.",
}

# A header text longer than this is cut (an error message may quote a long input).
MAX_HEADER_CHARS = 1_000


def header_text(text: str) -> bytes:
    """A header value: at most MAX_HEADER_CHARS characters, valid UTF-8 whatever the text."""
    if len(text) > MAX_HEADER_CHARS:
        text = text[: MAX_HEADER_CHARS - 1] + "\u2026"
    return text.encode("utf-8", "replace")
