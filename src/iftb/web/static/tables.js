// iftb dashboard: its figures as text — statistics cards and tables. Loaded before
// dashboard.js. Every string reaches the DOM as textContent, never as markup; money stays the
// API's decimal string; every figure carries a data-testid.
"use strict";

const STATISTICS = [
  ["net_pnl", "Net PnL"],
  ["total_trades", "Trades"],
  ["win_rate", "Win rate %"],
  ["profit_factor", "Profit factor"],
  ["expectancy", "Expectancy"],
  ["gross_profit", "Gross profit"],
  ["gross_loss", "Gross loss"],
  ["total_fees", "Fees"],
  ["total_funding", "Funding"],
  ["largest_win", "Largest win"],
  ["largest_loss", "Largest loss"],
  ["max_drawdown_amount", "Max drawdown"],
  // the API's statistics have no starting balance: the fall is of the running peak PnL
  ["max_drawdown_pct", "Max drawdown % of peak PnL"],
  ["avg_holding_time", "Avg holding"],
];

// ---- DOM helpers --------------------------------------------------------------------------

/** An element with text (always as textContent) and attributes. */
function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== null && text !== undefined) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

/** A table cell for one figure; numbers right-aligned, signed money coloured. */
function cell(testid, value, kind = "text") {
  const td = element("td", value ?? "—", { "data-testid": testid });
  if (kind === "number" || kind === "money") td.className = "number";
  if (kind === "money" && value) td.classList.add(value.startsWith("-") ? "down" : "up");
  if (kind === "message") td.className = "message";
  return td;
}

/** A cell showing an ISO time compactly; the API's exact string stays in `datetime`. */
function timeCell(testid, iso) {
  const td = element("td", null, { "data-testid": testid });
  if (!iso) {
    td.textContent = "—";
    return td;
  }
  const short = iso.replace("T", " ").replace(/(:\d\d)?(\.\d+)?Z$/, "");
  td.append(element("time", short, { datetime: iso, title: iso }));
  return td;
}

/** Replace a table body's rows: one per item, or one line saying there are none. */
function fillTable(id, items, row, emptyText) {
  const body = document.getElementById(id);
  const rows = items.map((item, index) => {
    const tr = element("tr", null, { "data-testid": `${id}-row`, "data-index": index });
    tr.append(...row(item));
    return tr;
  });
  if (rows.length === 0) {
    const columns = body.closest("table").querySelectorAll("thead th").length;
    const empty = element("tr");
    empty.append(element("td", emptyText, { colspan: columns, class: "empty", "data-testid": `${id}-empty` }));
    rows.push(empty);
  }
  body.replaceChildren(...rows);
}

// ---- figures ------------------------------------------------------------------------------

function renderStatistics(statistics) {
  const cards = STATISTICS.map(([name, label]) => {
    const card = element("div");
    const value = statistics[name];
    const figure = element("dd", value ?? "—", { "data-testid": `stat-${name}` });
    if (name === "net_pnl" && value) figure.className = value.startsWith("-") ? "down" : "up";
    card.append(element("dt", label), figure);
    return card;
  });
  document.getElementById("statistics").replaceChildren(...cards);
}

function renderPositions(positions, exchange) {
  fillTable("positions", positions, (position) => [
    cell("position-symbol", position.symbol),
    cell("position-exchange", position.exchange),
    cell("position-side", position.side),
    cell("position-quantity", position.quantity, "number"),
    cell("position-entry_price", position.entry_price, "number"),
    cell("position-current_price", position.current_price, "number"),
    cell("position-unrealized_pnl", position.unrealized_pnl, "money"),
    cell("position-leverage", position.leverage, "number"),
    timeCell("position-entry_time", position.entry_time),
  ], `no open positions on ${exchange}`);
}

function renderTrades(page) {
  document.getElementById("trades-total").textContent =
    `${Math.min(page.trades.length, page.total)} of ${page.total}`;
  fillTable("trades", page.trades, (trade) => [
    cell("trade-trade_id", trade.trade_id),
    cell("trade-symbol", trade.symbol),
    cell("trade-side", trade.side),
    cell("trade-action", trade.action),
    timeCell("trade-entry_time", trade.entry_time),
    cell("trade-entry_price", trade.entry_price, "number"),
    timeCell("trade-exit_time", trade.exit_time),
    cell("trade-exit_price", trade.exit_price, "number"),
    cell("trade-quantity", trade.quantity, "number"),
    cell("trade-fee", trade.fee, "number"),
    cell("trade-realized_pnl", trade.realized_pnl, "money"),
  ], "no trades in this scope");
}

function renderLlmUsage(spend) {
  document.getElementById("llm-days").textContent = `last ${spend.days} days`;
  fillTable("llm-models", spend.by_model, (model) => [
    cell("llm_model-model", model.model),
    cell("llm_model-calls", model.calls, "number"),
    cell("llm_model-failed", model.errors + model.timeouts, "number"),
    cell("llm_model-total_tokens", model.total_tokens, "number"),
    cell("llm_model-estimated_cost", model.estimated_cost, "number"),
    cell("llm_model-p95_latency_ms", model.p95_latency_ms, "number"),
  ], "no LLM calls in the window");
  fillTable("llm-usage", spend.by_day, (day) => [
    cell("llm-day", day.day),
    cell("llm-model", day.model),
    cell("llm-calls", day.calls, "number"),
    cell("llm-total_tokens", day.total_tokens, "number"),
    cell("llm-estimated_cost", day.estimated_cost, "number"),
  ], "no LLM calls in the window");
}

function renderEvents(events) {
  fillTable("events", events, (event) => [
    timeCell("event-created_at", event.created_at),
    cell("event-severity", event.severity),
    cell("event-event_type", event.event_type),
    cell("event-message", event.message, "message"),
  ], "no warnings or errors");
}

/** A bar as wide as the share of the expected candles that are stored. */
function coverageBar(series) {
  const share = series.expected > 0 ? Math.min(1, series.count / series.expected) : 1;
  const td = element("td", null, { "data-testid": "series-complete", title: `${(share * 100).toFixed(2)} %` });
  const bar = element("div", null, { class: "bar" });
  const filled = element("span");
  filled.style.width = `${(share * 100).toFixed(2)}%`; // a property: the CSP allows no style attribute
  bar.append(filled);
  td.append(bar);
  return td;
}

function renderCoverage(series) {
  fillTable("coverage", series, (one) => [
    cell("series-symbol", one.symbol),
    cell("series-exchange", one.exchange),
    cell("series-timeframe", one.timeframe),
    cell("series-price_type", one.price_type),
    timeCell("series-first", one.first),
    timeCell("series-last", one.last),
    cell("series-count", one.count, "number"),
    cell("series-missing", one.missing, "number"),
    cell("series-gaps", one.gaps, "number"),
    coverageBar(one),
  ], "no candles stored");
}
