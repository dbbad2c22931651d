"""Error types of the benchmark.

Every error a user can cause (unknown name, missing or corrupt data, bad checkpoint, invalid
option) is a :class:`BenchmarkError` whose message is one line naming the problem and the fix
(one line per problem where a check finds several). The CLI turns it into exit code 1 and those
lines on stderr.
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


class LedgerError(ResultsError):
    """The published results do not match their ledger (a file changed, went missing or was
    never published, or the ledger itself was edited).

    It carries every problem found, one line each (``problems``); ``str(err)`` is those lines.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
