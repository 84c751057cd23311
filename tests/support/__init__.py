"""Test support code that is not fixtures: the throwaway PostgreSQL server."""
