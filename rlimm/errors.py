"""User-facing errors. The CLI turns these into one line on stderr and exit code 2."""


class RlimmError(ValueError):
    """Bad input from a user: a value that is not accepted. The message names the value and what
    is accepted."""


class ConfigError(RlimmError):
    """A configuration file that cannot be used (missing, malformed, unknown key, bad value)."""
