"""The trading journal, per scope: trades, positions, daily performance."""
