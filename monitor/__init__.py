"""FinPulse: streaming financial-news sentiment monitor."""

__version__ = "0.1.0"
