"""The domain's error tree; each class carries its HTTP status and error code.

    DomainError
     ├── NotFound          404  (OrderNotFound)
     ├── RuleViolated      422  (EmptyOrder, TooManyItems, IdempotencyKeyReused)
     ├── Conflict          409  (CannotCancelShippedOrder, AlreadyCancelled,
     │                           InvalidStatusForShipping)
     └── VersionConflict   412  (If-Match mismatch, or a lost race on the same order)

One exception handler in the API maps the whole tree to the error envelope.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "DomainError"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status = 404


class RuleViolated(DomainError):
    status = 422


class Conflict(DomainError):
    status = 409


class VersionConflict(DomainError):
    status = 412
    code = "VersionConflict"


class OrderNotFound(NotFound):
    code = "OrderNotFound"


class EmptyOrder(RuleViolated):
    code = "EmptyOrder"


class TooManyItems(RuleViolated):
    code = "TooManyItems"


class IdempotencyKeyReused(RuleViolated):
    code = "IdempotencyKeyReused"


class CannotCancelShippedOrder(Conflict):
    code = "CannotCancelShippedOrder"


class AlreadyCancelled(Conflict):
    code = "AlreadyCancelled"


class InvalidStatusForShipping(Conflict):
    code = "InvalidStatusForShipping"
