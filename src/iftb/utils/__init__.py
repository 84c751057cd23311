"""Shared utilities."""

from iftb.utils.logging import configure_logging, get_logger

__all__ = ["configure_logging", "get_logger"]
