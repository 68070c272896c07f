"""The errors albert-lite raises on bad input: each message names the file, key or field, the expected and the found."""


class AlbertError(ValueError):
    """Base class: bad input that the user can fix."""


class ConfigError(AlbertError):
    """A configuration that the model cannot run (a field out of range, shapes that do not divide)."""


class CheckpointError(AlbertError):
    """A checkpoint that cannot be loaded (missing file or key, wrong shape, truncated or corrupt file)."""


class TokenizerError(AlbertError):
    """A tokenizer file or training input that cannot be used."""
