"""Error types of the benchmark.

Every error a user can cause (unknown name, missing or corrupt data, bad checkpoint, invalid
option) is a :class:`BenchmarkError` whose message is one line naming the problem and the fix.
The CLI turns it into exit code 1 and that line on stderr.
"""


class BenchmarkError(Exception):
    """Base class of all user-facing errors; ``str(err)`` is a one-line explanation."""


class UnknownNameError(BenchmarkError, KeyError):
    """A registry lookup failed; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RegistryError(BenchmarkError):
    """A registration is invalid (duplicate name, missing metadata, bad entry point)."""


class DataError(BenchmarkError):
    """A data file is missing, corrupt or does not match its declared checksum."""


class CheckpointError(BenchmarkError):
    """A checkpoint or model card is missing, corrupt, or does not match its card."""


class ConfigError(BenchmarkError):
    """An option or configuration value is invalid."""


class ResultsError(BenchmarkError):
    """A results file does not validate against the schema or has an unknown version."""
