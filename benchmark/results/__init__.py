"""Results: the JSON schema, atomic IO and provenance of every results file."""

from benchmark.results.io import atomic_write_bytes, atomic_write_json
from benchmark.results.schema import (
    SCHEMA_VERSION,
    load_schema,
    read_result,
    validate_result,
    write_result,
)

__all__ = [
    "SCHEMA_VERSION",
    "atomic_write_bytes",
    "atomic_write_json",
    "load_schema",
    "read_result",
    "validate_result",
    "write_result",
]
