"""The one exception of the data engine: its message is shown to the person as it is."""


class DataError(ValueError):
    """A file or setting that cannot be used; the message says what was wrong and what to do."""
