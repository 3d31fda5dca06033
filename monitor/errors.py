"""Exception hierarchy. Everything FinPulse raises on purpose derives from FinPulseError."""


class FinPulseError(Exception):
    """Root of FinPulse's own errors."""


class ConfigError(FinPulseError):
    """A setting is missing or inconsistent."""


class InvalidSetting(ConfigError):
    """Values for one settings section (from flags or the environment) that its field constraints refuse."""

    def __init__(self, section: str, problems: list[tuple[str, str]]) -> None:
        self.section = section
        self.problems = problems
        shown = "; ".join(
            f"{section}.{field} (FINPULSE_{section.upper()}_{field.upper()} or its flag): {message}"
            for field, message in problems
        )
        super().__init__(f"invalid setting: {shown}")


class BrokerError(FinPulseError):
    """The Kafka broker could not be started or reached."""


class ModelError(FinPulseError):
    """A model directory is missing, incomplete or incompatible."""


class StoreError(FinPulseError):
    """The database could not be reached or rejected a write."""
