"""Smake (print production): create the production order, then follow its state.

Smake's Orders API pages and the facts from its other pages are the reference. The package
has three floors, a module each:

- ``request.py``, the request body: ``smake_create_body`` and ``refusal_before_create``,
  pure functions of our ``Order`` and the settings;
- ``answers.py``, the reading of Smake's answers: ``observation_from_order``,
  ``choose_existing_order``, ``created_order_id`` and the one translation of a refusal,
  ``smake_error``, all pure;
- ``adapter.py``, ``SmakeAdapter``, which does the I/O: ask first, create only when Smake
  has nothing for the order, poll ``GET /orders/{id}``, or up to 100 orders at once with
  ``GET /orders?filter[id]=...``.

Decisions where the pages leave room (each one has a unit test):

- Street lines over Smake's documented 35 characters are refused before calling, naming the
  field: cutting them would ship to a corrupted address, and a refusal the merchant can read
  is better than whatever Smake does with them.
- Other required address fields (names, zip, city, country, phone) are not checked here:
  Smake is the authority on its own validation, and its 422 (field errors included) becomes
  the ``rejected`` reason. A missing address e-mail is filled with the customer's e-mail,
  since the customer is the contact for the parcel; nothing else is invented.
- The billing address is always sent: the order's own, or a copy of the shipping address
  (what Smake does anyway when it is absent, but explicit in our request).
- An answer with a state word this module does not know is an unreadable answer
  (``VendorUnavailable``, transient): the engine keeps polling with backoff, the word shows in
  the error message and the metrics, and a state that never becomes readable ends as
  ``timed_out`` rather than being guessed into a terminal status.
- Smake does not check ``external_identifier`` for uniqueness, and its filters match parts of
  a value, newest first: for order ``1001`` the first pages can be all ``10010``, ``91001x``
  and so on. The lookup reads every page (at most ``LOOKUP_MAX_PAGES``; past that it is an
  error, and nothing is created) and counts only an exact ``external_identifier``; when
  several orders carry our id the lowest id (the first created) is adopted and the others
  are logged.
- The lookup runs only when a create may already have happened: the engine records the
  intent to create before the create call, and a pair without one was never sent.
- Shipping and payment methods go to Smake as the handles its producer set up: through
  ``ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP`` / ``__PAYMENT_METHOD_MAP`` where set (an order
  naming a method a set map lacks is refused before calling, naming the method and the
  setting), else the order's own words.
- The create answer's ``Location`` is used for the id only when it names an order
  (``.../orders/{id}``): the page's own example points it at a job (``/jobs/1``), whose number
  is not the order id. With no usable id, the order is looked up again by external
  identifier; failing that the error is transient, and the next submit adopts the order
  instead of creating it twice.
"""

from orderflow.adapters.smake.adapter import LOOKUP_MAX_PAGES, LOOKUP_PAGE_SIZE, SmakeAdapter
from orderflow.adapters.smake.answers import (
    STATE_TO_STATUS,
    choose_existing_order,
    created_order_id,
    exact_matches,
    has_next_page,
    observation_from_order,
    smake_error,
    smake_message,
    tracking_numbers,
)
from orderflow.adapters.smake.request import (
    STREET_LINE_MAX,
    VENDOR,
    method_handle,
    refusal_before_create,
    smake_address,
    smake_create_body,
    smake_item,
    smake_lines,
)

__all__ = [
    "LOOKUP_MAX_PAGES",
    "LOOKUP_PAGE_SIZE",
    "STATE_TO_STATUS",
    "STREET_LINE_MAX",
    "VENDOR",
    "SmakeAdapter",
    "choose_existing_order",
    "created_order_id",
    "exact_matches",
    "has_next_page",
    "method_handle",
    "observation_from_order",
    "refusal_before_create",
    "smake_address",
    "smake_create_body",
    "smake_error",
    "smake_item",
    "smake_lines",
    "smake_message",
    "tracking_numbers",
]
