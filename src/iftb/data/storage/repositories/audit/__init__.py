"""The audit trail: LLM calls and system events."""
