"""Market data shared by every scope: candles."""
