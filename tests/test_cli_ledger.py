"""The ledger commands of ``iftb-db`` (``ledger``, ``funding``, ``reconcile``) driven through
Typer's runner on SQLite and PostgreSQL, over a small ledger recorded through the library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from iftb.cli import app
from iftb.commands import common
from iftb.data.storage import DatabaseManager, Fill, FundingPayment, Order
from tests.factories import T0
from tests.support.cli_results import ok, refused

Invoke = Callable[..., Result]
SCOPE = "trend-1/paper"
Row = tuple[str, ...]


@pytest.fixture
def invoke(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run a command on the test database, on a console wide enough that no cell folds."""
    monkeypatch.setattr(common.console, "width", 200)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, [*args, "--database-url", database_url])

    return run


@pytest.fixture
def seeded(database_url: str) -> None:
    """In trend-1/paper: trade t1, BTCUSDT long, bought 1 @ 100 and 1 @ 102 (fees 0.04 USDT and
    0.0408 in the quote asset), a take-profit cancelled, closed 2 @ 110 (fee 0.00015 BNB worth
    0.088), funding -0.5 while open: realized 18 - 0.1688 - 0.5 = 17.3312. Funding outside it
    (BTCUSDT +0.3 and +0.1 after the close, ETHUSDT short +1.2), and trade t2 open: ETHUSDT
    long 3 @ 50."""
    asyncio.run(_seed(database_url))


async def _seed(database_url: str) -> None:
    async with (
        DatabaseManager(database_url) as manager,
        manager.scope("trend-1", "paper").session() as journal,
    ):
        ledger = journal.ledger
        await ledger.record_order(_order("o1", "buy", "limit", price=Decimal(101)))
        await ledger.record_fill(
            _fill("f1", "o1", "buy", "100", "1", 1, fee=Decimal("0.04"), fee_asset="USDT",
                  is_maker=True)
        )  # fmt: skip
        await ledger.record_fill(
            _fill("f2", "o1", "buy", "102", "1", 2, fee=Decimal("0.0408"), is_maker=False)
        )
        await ledger.record_order(_order("o2", "sell", "limit", minutes=5, price=Decimal(120)))
        await ledger.update_order("binance", "o2", status="cancelled")
        await ledger.record_order(_order("o3", "sell", "market", minutes=600))
        await ledger.record_fill(
            _fill("f3", "o3", "sell", "110", "2", 600, fee=Decimal("0.00015"), fee_asset="BNB",
                  fee_quote=Decimal("0.088"))
        )  # fmt: skip
        for hours, symbol, side, amount, rate in (
            (8, "BTCUSDT", "long", "-0.5", "0.0001"),
            (16, "BTCUSDT", "long", "0.3", "-0.00006"),
            (8, "ETHUSDT", "short", "1.2", "0.0002"),
            (24, "BTCUSDT", "long", "0.1", None),
        ):
            await ledger.record_funding(
                FundingPayment(
                    symbol=symbol, position_side=side, funding_time=T0 + timedelta(hours=hours),
                    amount=Decimal(amount), rate=None if rate is None else Decimal(rate),
                )
            )  # fmt: skip
        await ledger.record_order(
            _order("e1", "buy", "market", trade_id="t2", symbol="ETHUSDT", quantity=3, minutes=1800)
        )
        await ledger.record_fill(_fill("e-f1", "e1", "buy", "50", "3", 1800, symbol="ETHUSDT"))


def _order(
    client_order_id: str, side: str, order_type: str, *, minutes: int = 0, trade_id: str = "t1",
    symbol: str = "BTCUSDT", quantity: int = 2, price: Decimal | None = None,
) -> Order:  # fmt: skip
    return Order(
        client_order_id=client_order_id, trade_id=trade_id, symbol=symbol, side=side,
        position_side="long", order_type=order_type, quantity=Decimal(quantity), price=price,
        placed_at=T0 + timedelta(minutes=minutes), reduce_only=side == "sell",
    )  # fmt: skip


def _fill(
    fill_id: str, client_order_id: str, side: str, price: str, quantity: str, minutes: int,
    *, symbol: str = "BTCUSDT", **fields: object,
) -> Fill:  # fmt: skip
    return Fill(
        exchange_fill_id=fill_id, client_order_id=client_order_id, symbol=symbol, side=side,
        price=Decimal(price), quantity=Decimal(quantity),
        filled_at=T0 + timedelta(minutes=minutes), **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def rows(output: str) -> list[Row]:
    """The cells of every table row printed, stripped."""
    return [
        tuple(cell.strip() for cell in line.split("│")[1:-1])
        for line in output.splitlines()
        if line.startswith("│")
    ]


def row(output: str, first: str, *more: str) -> Row:
    """The one row whose first cells are ``first, *more``."""
    key = (first, *more)
    found = [cells for cells in rows(output) if cells[: len(key)] == key]
    assert len(found) == 1, (key, output)
    return found[0][len(key) :]


def numbers(cells: Row) -> list[Decimal | str]:
    """Cells as exact numbers where they are numbers (the store's scale does not matter)."""
    result: list[Decimal | str] = []
    for cell in cells:
        try:
            result.append(Decimal(cell))
        except ArithmeticError:
            result.append(cell)
    return result


def positions_file(tmp_path: Path, content: object) -> str:
    path = tmp_path / "positions.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_help_lists_the_ledger_commands() -> None:
    output = CliRunner().invoke(app, ["--help"]).output
    for command in ("ledger", "funding", "reconcile"):
        assert command in output
    assert "3: they differ" in CliRunner().invoke(app, ["reconcile", "--help"]).output


# --- ledger -----------------------------------------------------------------------------------


def test_ledger_shows_the_trades_orders(invoke: Invoke, seeded: None) -> None:
    output = ok(invoke("ledger", "t1", "--scope", SCOPE))
    assert numbers(row(output, "o1")) == ["buy", "limit", 2, 2, 101, "filled"]
    assert numbers(row(output, "o2")) == ["sell", "limit", 2, 0, "—", "cancelled"]
    assert numbers(row(output, "o3")) == ["sell", "market", 2, 2, 110, "filled"]
    assert output.index("│ o1") < output.index("│ o2") < output.index("│ o3")  # placed order


def test_ledger_shows_the_trades_fills_with_fees_and_maker(invoke: Invoke, seeded: None) -> None:
    output = ok(invoke("ledger", "t1", "--scope", SCOPE))
    assert numbers(row(output, "f1")) == [
        "2024-01-01 00:01:00", "buy", 100, 1, Decimal("0.04"), "USDT", "yes",
    ]  # fmt: skip
    assert numbers(row(output, "f2")) == [
        "2024-01-01 00:02:00", "buy", 102, 1, Decimal("0.0408"), "quote", "no",
    ]  # fmt: skip
    f3 = row(output, "f3")
    assert numbers(f3[:5]) == ["2024-01-01 10:00:00", "sell", 110, 2, Decimal("0.00015")]
    assert f3[5] == "BNB (0.08800000 quote)" and f3[6] == "—"
    assert "e-f1" not in output  # another trade's fill


def test_ledger_shows_only_the_funding_paid_while_the_trade_was_open(
    invoke: Invoke, seeded: None
) -> None:
    output = ok(invoke("ledger", "t1", "--scope", SCOPE))
    assert numbers(row(output, "2024-01-01 08:00:00")) == [Decimal("0.0001"), Decimal("-0.5")]
    assert "2024-01-01 16:00:00" not in output  # paid after the close: not the trade's


def test_ledger_totals_are_the_trades_fees_funding_and_pnl(invoke: Invoke, seeded: None) -> None:
    output = ok(invoke("ledger", "t1", "--scope", SCOPE))
    assert "trade t1 (BTCUSDT long, close)" in output
    assert numbers(row(output, "fees")) == [Decimal("0.1688")]  # 0.04 + 0.0408 + 0.088
    assert numbers(row(output, "funding")) == [Decimal("-0.5")]
    assert numbers(row(output, "realized pnl")) == [Decimal("17.3312")]  # 18 - fees + funding


def test_ledger_of_an_open_trade_without_funding(invoke: Invoke, seeded: None) -> None:
    output = ok(invoke("ledger", "t2", "--scope", SCOPE))
    assert numbers(row(output, "e1")) == ["buy", "market", 3, 3, 50, "filled"]
    assert "no funding payments of t2" in output
    assert "trade t2 (ETHUSDT long, open)" in output
    assert numbers(row(output, "fees")) == [0] and numbers(row(output, "funding")) == [0]


def test_ledger_reads_the_scope_named(invoke: Invoke, seeded: None) -> None:
    refused(invoke("ledger", "t1"), "no trade 't1' in default/live")
    refused(invoke("ledger", "t9", "--scope", SCOPE), "no trade 't9' in trend-1/paper")


# --- funding ----------------------------------------------------------------------------------


def test_funding_totals_per_symbol_and_day(invoke: Invoke, seeded: None) -> None:
    output = ok(invoke("funding", "--start", "2024-01-01", "--end", "2024-01-03", "--scope", SCOPE))
    assert numbers(row(output, "2024-01-01", "BTCUSDT")) == [2, Decimal("-0.2")]
    assert numbers(row(output, "2024-01-01", "ETHUSDT")) == [1, Decimal("1.2")]
    assert numbers(row(output, "2024-01-02", "BTCUSDT")) == [1, Decimal("0.1")]
    assert numbers(row(output, "total", "BTCUSDT")) == [3, Decimal("-0.1")]
    assert numbers(row(output, "total", "ETHUSDT")) == [1, Decimal("1.2")]
    assert len(rows(output)) == 5


def test_funding_window_and_symbol(invoke: Invoke, seeded: None) -> None:
    output = ok(invoke("funding", "--start", "2024-01-02", "--scope", SCOPE))
    assert [cells[:2] for cells in rows(output)] == [
        ("2024-01-02", "BTCUSDT"), ("total", "BTCUSDT"),
    ]  # fmt: skip
    output = ok(invoke("funding", "--end", "2024-01-01T12:00", "--scope", SCOPE))  # end: excluded
    assert numbers(row(output, "2024-01-01", "BTCUSDT")) == [1, Decimal("-0.5")]
    output = ok(invoke("funding", "--start", "2024-01-01", "--symbol", "ETHUSDT", "--scope", SCOPE))
    assert [cells[:2] for cells in rows(output)] == [
        ("2024-01-01", "ETHUSDT"), ("total", "ETHUSDT"),
    ]  # fmt: skip


def test_funding_defaults_to_the_last_seven_days(invoke: Invoke, seeded: None) -> None:
    assert "no funding payments in trend-1/paper" in ok(invoke("funding", "--scope", SCOPE))
    assert "no funding payments in default/live" in ok(invoke("funding", "--days", "100000"))
    everything = ok(invoke("funding", "--days", "100000", "--scope", SCOPE))
    assert numbers(row(everything, "total", "BTCUSDT")) == [3, Decimal("-0.1")]
    output = ok(invoke("funding", "--days", "100000", "--symbol", "SOLUSDT", "--scope", SCOPE))
    assert "no SOLUSDT funding payments" in output


# --- reconcile --------------------------------------------------------------------------------


def test_reconcile_agreeing_exits_0(invoke: Invoke, seeded: None, tmp_path: Path) -> None:
    file = positions_file(
        tmp_path,
        [
            {"symbol": "ETHUSDT", "side": "long", "size": "3", "entry_price": 50},
            {"symbol": "BTCUSDT", "side": "long", "size": 0, "entry_price": None},  # flat
        ],
    )
    output = ok(invoke("reconcile", file, "--scope", SCOPE))
    assert output == "ledger and exchange agree: trend-1/paper on binance\n"


def test_reconcile_lists_the_differences_and_exits_3(
    invoke: Invoke, seeded: None, tmp_path: Path
) -> None:
    file = positions_file(
        tmp_path,
        [
            {"symbol": "ETHUSDT", "side": "long", "size": 2.5, "entry_price": "50"},
            {"symbol": "SOLUSDT", "side": "short", "size": "1", "entry_price": 20.5},
        ],
    )
    output = ok(invoke("reconcile", file, "--scope", SCOPE), code=3)
    assert "2 differences, trend-1/paper against binance" in output
    assert numbers(row(output, "ETHUSDT", "long")) == [
        Decimal("2.5"), 3, 50, 50, "sizes differ",
    ]  # fmt: skip
    assert numbers(row(output, "SOLUSDT", "short")) == [
        1, 0, Decimal("20.5"), "—", "open on the exchange, not in the ledger",
    ]  # fmt: skip
    assert "logged" not in output
    assert ok(invoke("events", "--scope", SCOPE)) == "no events\n"


def test_reconcile_finds_a_position_missing_on_the_exchange_and_other_prices(
    invoke: Invoke, seeded: None, tmp_path: Path
) -> None:
    output = ok(invoke("reconcile", positions_file(tmp_path, []), "--scope", SCOPE), code=3)
    assert row(output, "ETHUSDT", "long")[-1] == "open in the ledger, not on the exchange"
    price = [{"symbol": "ETHUSDT", "side": "long", "size": 3, "entry_price": 51}]
    output = ok(invoke("reconcile", positions_file(tmp_path, price), "--scope", SCOPE), code=3)
    assert row(output, "ETHUSDT", "long")[-1] == "entry prices differ"
    other = ok(invoke("reconcile", positions_file(tmp_path, []), "--exchange", "bybit",
                      "--scope", SCOPE))  # fmt: skip
    assert "agree: trend-1/paper on bybit" in other  # the ledger holds nothing on bybit


def test_reconcile_record_logs_each_difference_as_a_warning(
    invoke: Invoke, seeded: None, tmp_path: Path
) -> None:
    file = positions_file(tmp_path, [{"symbol": "SOLUSDT", "side": "short", "size": "1"}])
    output = ok(invoke("reconcile", file, "--record", "--scope", SCOPE), code=3)
    assert "2 logged as warning events (type reconciliation)" in output
    events = ok(invoke("events", "--scope", SCOPE, "--type", "reconciliation"))
    assert "SOLUSDT short: open on the exchange, not in the ledger" in events
    assert "ETHUSDT long: open in the ledger, not on the exchange" in events
    assert "warning" in events


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[{", ("positions.json: not JSON", "line 1, column 3")),
        ('{"symbol": "BTCUSDT"}', ("expected a JSON list of positions, got an object",)),
        ("[1]", ("item 0: expected an object",)),
        (
            [
                {"symbol": "BTCUSDT", "side": "long", "size": 1},
                {"symbol": "ETHUSDT", "side": "flat", "size": 1},
            ],
            ("item 1: side: 'flat' is not one of long, short",),
        ),
        ([{"symbol": "BTCUSDT", "side": "long", "size": -1}], ("item 0: size: must be ≥ 0",)),
        ([{"symbol": "BTCUSDT", "side": "long", "size": "x"}], ("item 0: size: 'x' is not",)),
        ([{"symbol": "BTCUSDT", "side": "long", "size": "NaN"}], ("item 0: size: NaN is not",)),
        ([{"symbol": "BTCUSDT", "side": "long", "size": True}], ("item 0: size: expected",)),
        (
            [{"symbol": "BTCUSDT", "side": "long", "size": 1, "entry_price": 0}],
            ("item 0: entry_price: must be > 0",),
        ),
        ([{"side": "long", "size": 1}], ("item 0: symbol: missing",)),
        ([{"symbol": "", "side": "long", "size": 1}], ("item 0: symbol: expected a non-empty",)),
        (
            [{"symbol": "BTCUSDT", "side": "long", "size": 1, "entryPrice": 5}],
            ("item 0: entryPrice: unknown field",),
        ),
        (
            [
                {"symbol": "BTCUSDT", "side": "long", "size": 1},
                {"symbol": "BTCUSDT", "side": "long", "size": 2},
            ],
            ("item 1: BTCUSDT long is already item 0",),
        ),
    ],
)
def test_reconcile_refuses_bad_positions_naming_item_and_field(
    invoke: Invoke, tmp_path: Path, content: object, words: tuple[str, ...]
) -> None:
    refused(invoke("reconcile", positions_file(tmp_path, content), "--record"), *words)


def test_reconcile_refuses_a_missing_file(invoke: Invoke, tmp_path: Path) -> None:
    refused(invoke("reconcile", str(tmp_path / "none.json")), "none.json: cannot read it")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("ledger", "t1", "--scope", "trend-1/dream"), ("scope 'trend-1/dream'", "mode")),
        (("funding", "--scope", "trend-1/backtest/9"), ("no backtest run with id 9",)),
        (("funding", "--days", "3", "--start", "2024-01-01"), ("--days",)),
        (("funding", "--start", "yesterday"), ("--start", "ISO 8601")),
        (("funding", "--start", "2024-01-02", "--end", "2024-01-01"), ("--end", "not after")),
        (("reconcile", "positions.json", "--scope", "/paper"), ("bot name cannot be empty",)),
    ],
)
def test_bad_options_are_one_clear_line(
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    words: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)
    positions_file(tmp_path, [])
    refused(invoke(*args), *words)


@pytest.mark.parametrize("args", [("ledger",), ("reconcile",), ("funding", "--days", "0")])
def test_usage_errors_exit_2(invoke: Invoke, args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
