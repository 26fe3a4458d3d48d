"""The domain's error tree; each class carries a stable error code, and nothing of HTTP.

    DomainError
     ├── NotFound          (OrderNotFound)
     ├── RuleViolated      (EmptyOrder, TooManyItems, IdempotencyKeyReused)
     ├── Conflict          (CannotCancelShippedOrder, AlreadyCancelled,
     │                      InvalidStatusForShipping, RebuildRunning)
     └── VersionConflict   (If-Match mismatch, or a lost race on the same order)

The HTTP edge (`app.errors`) maps each family to one status, in one table.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "DomainError"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "NotFound"


class RuleViolated(DomainError):
    code = "RuleViolated"


class Conflict(DomainError):
    code = "Conflict"


class VersionConflict(DomainError):
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
