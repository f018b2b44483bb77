"""Errors of the store: requests it cannot honour, each naming the record, file or setting at fault."""


class StoreError(Exception):
    """A request the store cannot honour (mismatched model, unknown record, unusable database)."""
