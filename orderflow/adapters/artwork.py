"""The customer's artwork, from the vendor that made it to the one that prints it (contract,
"One order, one flow"): a line designed at Zakeke (`customization.design_id`) and produced by
Smake (`fulfilment.provider == "smake"`) is printed with Zakeke's print-ready file.

`ArtworkSource` is what the printing adapter needs of the designing one: the line's file,
streamed, and the design's size. The Zakeke adapter is one; `adapters/enabled.py` hands it to
the Smake adapter when both vendors are enabled.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from orderflow.adapters.http import Download
from orderflow.contracts.events import Order, OrderLine

# Smake's `POST /media` takes a file of at most 51.2 MB.
MAX_ARTWORK_BYTES = 51_200_000
# The content type of each print-ready format Smake takes.
CONTENT_TYPES = {"PDF": "application/pdf", "PNG": "image/png"}


def artwork_lines(order: Order) -> list[OrderLine]:
    """The order's lines designed at Zakeke and produced by Smake."""
    return [line for line in order.lines
            if line.zakeke is not None and line.zakeke.design_id and line.smake is not None]


class ArtworkSource(Protocol):
    """Where a line's print-ready file comes from (the Zakeke adapter)."""

    def print_file(self, line: OrderLine,
                   file_format: str) -> contextlib.AbstractAsyncContextManager[Download]:
        """The line's print-ready file in `file_format` (`PDF`, `PNG`), read as it arrives.
        VendorUnavailable while it is not there yet; VendorRejected for a file that may not
        be read (a host that is not allowed)."""
        ...

    async def design_size_mm(self, line: OrderLine) -> tuple[int, int] | None:
        """The design's width and height in mm, as the designing vendor gives them; None
        when it gives none."""
        ...
