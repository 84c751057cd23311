"""LLMAnalysisLogRepository: the audit log of LLM calls (issue #5)."""

from __future__ import annotations

from iftb.data.storage.repositories.base import Repository


class LLMAnalysisLogRepository(Repository):
    """Every LLM call with tokens, cost, latency and status."""
