"""Errors of the store: requests it cannot honour, each naming the record, file or setting at fault."""


class StoreError(Exception):
    """A request the store cannot honour (mismatched model, unknown record, unusable database)."""


class UnknownMatrix(StoreError):
    """No matrix of that name: a model that never stored those rows (callers may fall back, e.g. to SQL)."""


class DamagedFile(StoreError):
    """A file of the store is not what the database says it holds (cut short): never taken for an absence."""
