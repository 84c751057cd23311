// iftb dashboard: reads the read-only JSON API and draws it. Plain JS, no build step.
//
// Every string from the API reaches the DOM through textContent (never innerHTML), money is
// shown as the API's decimal strings untouched, and every figure carries a data-testid.
"use strict";

const TOKEN_KEY = "iftb-token";
const DEFAULT_REFRESH_SECONDS = 5;
const TRADES_SHOWN = 50;
const EVENTS_SHOWN = 50;
const LLM_DAYS = 30;
const CANDLES_SHOWN = 1000; // the API's largest page
const TIMEFRAME_SECONDS = { m: 60, h: 3600, d: 86400, w: 604800 };
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
  ["max_drawdown_pct", "Max drawdown %"],
  ["avg_holding_time", "Avg holding"],
];

const view = {
  token: null,
  scopes: [], // the API's scope summaries
  scope: null, // {bot, mode, run_id}
  exchange: null,
  series: [], // the API's inventory
  seriesKey: null,
  charts: null,
  timer: null,
  busy: false,
  again: false,
  refused: false,
  rendered: false,
};

class TokenRefused extends Error {}

// ---- token and settings -------------------------------------------------------------------

/** The token from `#token=...` (then dropped from the address bar) or from this tab's storage. */
function readToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Seconds between refreshes: `?refresh=N` (0 stops it), else the default. */
function refreshSeconds() {
  const asked = Number(new URLSearchParams(location.search).get("refresh"));
  return Number.isFinite(asked) && asked >= 0 && location.search.includes("refresh=")
    ? asked
    : DEFAULT_REFRESH_SECONDS;
}

// ---- the API -----------------------------------------------------------------------------

/** GET an /api/ path with the token; a 401 is TokenRefused, any other failure its detail. */
async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) url.searchParams.set(name, value);
  }
  const headers = view.token ? { Authorization: `Bearer ${view.token}` } : {};
  const response = await fetch(url, { headers, cache: "no-store" });
  if (response.status === 401) throw new TokenRefused();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${body.detail || response.status}`);
  return body;
}

/** The query parameters naming the selected scope. */
function scopeParams() {
  const { bot, mode, run_id } = view.scope;
  return run_id === null ? { bot, mode } : { bot, mode, run_id };
}

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
  td.append(element("time", iso.replace("T", " ").replace(/(:\d\d)?(\.\d+)?Z$/, ""), { datetime: iso }));
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

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

// ---- banner states ------------------------------------------------------------------------

/** No data on the page, and one clear sentence saying why. */
function showBanner(text) {
  document.getElementById("dashboard").hidden = true;
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = false;
  for (const id of ["statistics", "positions", "trades", "llm-models", "llm-usage", "events", "coverage"]) {
    document.getElementById(id).replaceChildren();
  }
  document.getElementById("scope").replaceChildren();
  document.getElementById("series").replaceChildren();
}

function showRefused() {
  showBanner(
    view.token
      ? "Token refused: the server did not accept this page's token. Open the address " +
          "iftb-db serve printed (…/#token=…)."
      : "Token refused: this page has no token. Open the address iftb-db serve printed " +
          "(…/#token=…)."
  );
  setStatus("token refused");
}

function showDashboard() {
  document.getElementById("banner").hidden = true;
  document.getElementById("dashboard").hidden = false;
}

// ---- selectors ----------------------------------------------------------------------------

function scopeKey(scope) {
  return `${scope.bot}/${scope.mode}/${scope.run_id ?? ""}`;
}

/** Fill the scope selector from /api/scopes, keeping the current choice when it still exists. */
function renderScopes(summaries) {
  view.scopes = summaries;
  const keys = summaries.map((summary) => scopeKey(summary.scope));
  if (!view.scope || !keys.includes(scopeKey(view.scope))) {
    view.scope = summaries.length ? summaries[0].scope : { bot: "default", mode: "live", run_id: null };
  }
  const select = document.getElementById("scope");
  select.replaceChildren(...summaries.map((summary) => element(
    "option", `${summary.name} (${summary.trades} trades)`, { value: scopeKey(summary.scope) },
  )));
  select.value = scopeKey(view.scope);
}

function seriesKey(series) {
  return `${series.symbol}|${series.exchange}|${series.timeframe}|${series.price_type}`;
}

/** Fill the candle-series selector from the inventory, keeping the current choice. */
function renderSeriesChoice(series, trades) {
  view.series = series;
  const keys = series.map(seriesKey);
  if (!keys.includes(view.seriesKey)) {
    const traded = series.find((one) => trades.some(
      (trade) => trade.symbol === one.symbol && trade.exchange === one.exchange,
    ));
    view.seriesKey = series.length ? seriesKey(traded || series[0]) : null;
  }
  const select = document.getElementById("series");
  select.replaceChildren(...series.map((one) => element(
    "option", `${one.symbol} ${one.timeframe} ${one.exchange} (${one.price_type})`,
    { value: seriesKey(one) },
  )));
  if (view.seriesKey) select.value = view.seriesKey;
}

/** The exchange whose daily rows and positions are shown: the scope's latest trade's. */
function chooseExchange(trades, series) {
  const asked = new URLSearchParams(location.search).get("exchange");
  return asked || trades[0]?.exchange || series[0]?.exchange || "binance";
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

function renderPositions(positions) {
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
  ], `no open positions on ${view.exchange}`);
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

// ---- candles -----------------------------------------------------------------------------

/** The last CANDLES_SHOWN candles of the chosen series (none chosen: an empty chart). */
async function loadCandles() {
  const series = view.series.find((one) => seriesKey(one) === view.seriesKey);
  if (!series) return [{ candles: [] }, []];
  const unit = TIMEFRAME_SECONDS[series.timeframe.slice(-1)] || 60;
  const span = Number.parseInt(series.timeframe, 10) * unit * CANDLES_SHOWN * 1000;
  const start = new Date(Math.max(Date.parse(series.first), Date.parse(series.last) - span + 1000));
  const window = { start: start.toISOString(), end: new Date(Date.parse(series.last) + 1000).toISOString() };
  return Promise.all([
    api("/api/candles", {
      symbol: series.symbol, exchange: series.exchange, timeframe: series.timeframe,
      price_type: series.price_type, limit: CANDLES_SHOWN, ...window,
    }),
    api("/api/trades/markers", { ...scopeParams(), symbol: series.symbol, exchange: series.exchange, ...window }),
  ]);
}

// ---- refresh ------------------------------------------------------------------------------

/** Read every figure of the selected scope and draw it. */
async function refresh() {
  if (view.busy) {
    view.again = true; // a choice made meanwhile: read again once this refresh ends
    return;
  }
  view.busy = true;
  try {
    renderScopes(await api("/api/scopes"));
    const scope = scopeParams();
    const [trades, series] = await Promise.all([
      api("/api/trades", { ...scope, limit: TRADES_SHOWN }),
      api("/api/inventory"),
    ]);
    view.exchange = chooseExchange(trades.trades, series);
    renderSeriesChoice(series, trades.trades);
    const onExchange = { ...scope, exchange: view.exchange };
    const [statistics, equity, daily, positions, llm, events, [candles, marks]] = await Promise.all([
      api("/api/statistics", scope),
      api("/api/equity", onExchange),
      api("/api/daily", onExchange),
      api("/api/positions", onExchange),
      api("/api/llm-usage", { ...scope, days: LLM_DAYS }),
      api("/api/events", { ...scope, limit: EVENTS_SHOWN }),
      loadCandles(),
    ]);
    showDashboard();
    if (!view.charts) view.charts = createCharts();
    renderStatistics(statistics);
    renderTrades(trades);
    renderPositions(positions);
    renderLlmUsage(llm);
    renderEvents(events);
    renderCoverage(series);
    drawEquity(view.charts, equity);
    drawDaily(view.charts, daily);
    drawCandles(view.charts, candles, marks);
    markFirstRender();
    markShown();
    setStatus(`${view.exchange} · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error instanceof TokenRefused) {
      view.refused = true;
      showRefused();
      stopRefreshing();
    } else {
      setStatus(`refresh failed: ${error.message}`);
    }
  } finally {
    view.busy = false;
  }
  if (view.again && !view.refused) {
    view.again = false;
    refresh();
  }
}

/** The time to first render, for the benchmark: once, after the first data is drawn. */
function markFirstRender() {
  if (view.rendered) return;
  view.rendered = true;
  requestAnimationFrame(() => {
    performance.mark("iftb-first-render");
    document.body.dataset.rendered = "true";
  });
}

/** What the page shows now, on <body>: the scope and how many refreshes have drawn. */
function markShown() {
  document.body.dataset.scope = scopeKey(view.scope);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

function stopRefreshing() {
  clearInterval(view.timer);
  view.timer = null;
}

function onScopeChosen(event) {
  view.scope = view.scopes.find((summary) => scopeKey(summary.scope) === event.target.value).scope;
  view.seriesKey = null;
  refresh();
}

function onSeriesChosen(event) {
  view.seriesKey = event.target.value;
  refresh();
}

/** A new `#token=...` opened in this tab (same page: the browser does not reload it). */
function onHashChanged() {
  if (!new URLSearchParams(location.hash.slice(1)).get("token")) return;
  view.token = readToken();
  view.refused = false;
  startRefreshing();
}

function startRefreshing() {
  stopRefreshing();
  refresh();
  const every = refreshSeconds();
  if (every > 0) view.timer = setInterval(refresh, every * 1000);
}

function main() {
  view.token = readToken();
  document.getElementById("scope").addEventListener("change", onScopeChosen);
  document.getElementById("series").addEventListener("change", onSeriesChosen);
  window.addEventListener("hashchange", onHashChanged);
  startRefreshing();
}

main();
