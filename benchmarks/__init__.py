"""Benchmark harness of the iftb storage layer: library paths against the raw drivers.

Every figure is measured on SQLite (a temporary file database, migrated by ``DatabaseManager``)
and on PostgreSQL (a throwaway PostgreSQL 15 cluster from ``tests/support/pg_cluster.py``, or the
server in ``IFTB_TEST_POSTGRES_URL``) in one run, as the median of several repetitions, and set
against the raw driver (asyncpg, stdlib ``sqlite3``) doing the same work on the same rows in the
same run. The result is written to ``docs/performance.md``.

This is deliberately not part of the pytest suite: timings depend on the machine, so nothing
here asserts; targets are reported as met or not met.

Usage::

    .venv/bin/python -m benchmarks                  # full run (minutes), writes docs/performance.md
    .venv/bin/python -m benchmarks --quick          # smoke run on tiny sizes, prints the report
    .venv/bin/python -m benchmarks --large          # also seed 10M candles on PostgreSQL for
                                                    # the get_coverage-at-10M target
    .venv/bin/python -m benchmarks --rows 50000 --repetitions 3 --backends sqlite
    .venv/bin/python -m benchmarks --database-url postgresql+asyncpg://...   # an existing,
                                                    # migrated database (e.g. a Citus
                                                    # coordinator); only BENCH_* rows
    .venv/bin/python -m benchmarks --help
    .venv/bin/python -m benchmarks.citus            # plain PostgreSQL against Citus, one run
    .venv/bin/python -m benchmarks.bench_scopes     # scopes only (record_trades, statistics
                                                    # of one scope among 20); rewrites the
                                                    # report's Scopes section (--quick: prints)
    .venv/bin/python -m benchmarks.bench_ledger     # futures ledger only (fills one at a time,
                                                    # a history in bulk); rewrites the report's
                                                    # Futures ledger section (--quick: prints)
"""
