"""Zakeke (product customizer): register the order, then follow the print-ready files.

What the Zakeke pages and the facts gathered beside them say, and what this package does
about each:

- Every call carries an S2S OAuth token from `POST /token` (form body
  `grant_type=client_credentials&access_type=S2S`, HTTP Basic with client id and secret).
  One token page spells the field `access-token`; both spellings are read. Tokens are reused
  until shortly before `expires_in`; a 401/403 drops the token and the call is tried once
  more with a fresh one.
- Registering an order needs a token requested with `customercode` (a registered
  customer) or `visitorcode` (a guest): Zakeke answers 400 to a registration whose token
  carries neither. Those tokens are cached per code in a bounded LRU. Reads use one plain
  S2S token, so polling never costs a token request per customer.
- `POST /v2/order` promises only a status code, and nothing says a second post of the same
  code is refused: it may register the order twice. The engine records the intent to
  register before every post; when one exists, `submit` asks `GET /v2/order/{orderCode}`
  first and adopts what Zakeke already has. A read right after a registration can still
  answer 404, so after an intent the order must stay absent for
  `ORDERFLOW_ZAKEKE__REGISTER_SETTLE_S` before it is posted again. After a post the order
  is read back (which may still 404 for a moment) to learn Zakeke's `id`.
- Print files are rendered asynchronously: items stay `INPROCESS` (and the output-file
  endpoints answer 404) until they are `READY`.
- Polls read one order each (`GET /v2/order/{orderCode}`). Zakeke's listing
  (`GET /v2/orders`, 100 a page) has no filter by code or id and no stated order: reading
  the waiting orders through it means reading every order ever registered, page by page,
  with orders registered meanwhile shifting the pages under the walk. That costs more than
  one read per waiting order as soon as finished orders outnumber waiting ones a hundred
  to one (any shop after a few days), and can miss an order, so it is not used.

Layout, by role: `request.py` (our order as Zakeke's request, pure), `answers.py` (Zakeke's
answers as data and the one translation of its errors, pure), `tokens.py` (the token cache),
`adapter.py` (the I/O).
"""

from __future__ import annotations

from orderflow.adapters.zakeke.adapter import (
    ZakekeAdapter,
)
from orderflow.adapters.zakeke.answers import (
    DesignLineFiles,
    GrantedToken,
    ZakekeOrderSummary,
    design_unit_price_from,
    match_design_items,
    parse_token_answer,
    summarize_zakeke_order,
    token_lifetime,
    zakeke_error,
    zip_url_from,
)
from orderflow.adapters.zakeke.request import (
    TokenCode,
    build_register_body,
    composition_lines,
    design_lines,
    dumps_exact_json,
    order_path,
    registration_code,
    zakeke_lines,
)
from orderflow.adapters.zakeke.tokens import (
    CachedToken,
    S2STokenCache,
)

__all__ = [
    "CachedToken",
    "DesignLineFiles",
    "GrantedToken",
    "S2STokenCache",
    "TokenCode",
    "ZakekeAdapter",
    "ZakekeOrderSummary",
    "build_register_body",
    "composition_lines",
    "design_lines",
    "design_unit_price_from",
    "dumps_exact_json",
    "match_design_items",
    "order_path",
    "parse_token_answer",
    "registration_code",
    "summarize_zakeke_order",
    "token_lifetime",
    "zakeke_error",
    "zakeke_lines",
    "zip_url_from",
]
