"""iftb: the persistence layer of the iftb crypto futures trading bot."""

__version__ = "0.1.0"
