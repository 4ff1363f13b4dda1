"""Errors caused by user input (scenario, topology, sweep files).

The CLI prints them as one line, ``FILE: FIELD: message``, and exits with status 2.
"""

from __future__ import annotations


class InputError(Exception):
    """A mistake in a file the user wrote.

    ``source`` is the file (or ``"--set"`` for command-line overrides), ``field`` the dotted
    path to the offending value (``workload.transfers.0.bytes``), empty when the whole file
    is at fault.
    """

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = str(source)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return f"{where}: {self.message}"

    def within(self, prefix: str) -> InputError:
        """The same error with ``prefix`` prepended to the field path."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return InputError(self.source, field, self.message)


class PluginError(Exception):
    """User code named in a scenario (a strategy, model or data plug-in) raised.

    ``field`` is where the scenario names it (``workload.cloud.strategy``), ``ref`` the
    reference (``./mystrategy.py:Median``), ``traceback`` the user's traceback as text
    (kept as text so that it survives the trip back from a worker process).
    """

    def __init__(self, field: str, ref: str, error: str, traceback: str = "") -> None:
        self.field = field
        self.ref = ref
        self.error = error
        self.traceback = traceback
        super().__init__(field, ref, error, traceback)

    def __str__(self) -> str:
        return f"plug-in {self.ref} ({self.field}) raised {self.error}"
