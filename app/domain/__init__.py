"""Pure, synchronous business rules of an order: commands, events, the aggregate, errors."""
