"""The fuzzing gate (test_schemathesis.py) and the schemathesis hooks its child process loads.

The schemathesis CLI imports this package (`hooks = "tests.fuzz"` in the generated config);
under pytest the hook is registered too, where nothing calls it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

# The documented Idempotency-Key (app/write/router.py): printable ASCII, 1..200 characters.
_VALID_KEY = re.compile(r"^[!-~]([ -~]{0,198}[!-~])?$")


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case,
                kwargs: dict[str, Any]) -> None:
    """Give every valid generated Idempotency-Key a fresh suffix.

    A key is single-use: the same key with another request is `422 IdempotencyKeyReused`
    (as the IETF draft asks), a rule about server state that no schema can state. Generated
    keys repeat across cases ("0", "null"), so without this, valid requests would be refused
    for a reason outside the contract. Invalid keys stay as generated, for negative testing.
    """
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"{key[:160]}-{uuid.uuid4().hex}"
