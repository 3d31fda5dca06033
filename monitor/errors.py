"""Exception hierarchy. Everything FinPulse raises on purpose derives from FinPulseError."""


class FinPulseError(Exception):
    """Root of FinPulse's own errors."""


class ConfigError(FinPulseError):
    """A setting is missing or inconsistent."""


class BrokerError(FinPulseError):
    """The Kafka broker could not be started or reached."""


class ModelError(FinPulseError):
    """A model directory is missing, incomplete or incompatible."""


class StoreError(FinPulseError):
    """The database could not be reached or rejected a write."""
