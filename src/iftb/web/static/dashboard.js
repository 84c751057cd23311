// iftb dashboard: reads the read-only JSON API and shows it (tables.js writes the figures,
// charts.js draws them; both are loaded first). Plain JS, no build step.
"use strict";

const TOKEN_KEY = "iftb-token";
const DEFAULT_REFRESH_SECONDS = 5;
const TRADES_SHOWN = 50;
const EVENTS_SHOWN = 50;
const LLM_DAYS = 30;
const CANDLES_SHOWN = 1000; // the API's largest page
const TIMEFRAME_SECONDS = { m: 60, h: 3600, d: 86400, w: 604800 };

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
  const asked = new URLSearchParams(location.search).get("refresh");
  const seconds = asked === null ? Number.NaN : Number(asked);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : DEFAULT_REFRESH_SECONDS;
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
  const filled = ["statistics", "positions", "trades", "llm-models", "llm-usage", "events"];
  for (const id of [...filled, "coverage", "scope", "series"]) {
    document.getElementById(id).replaceChildren();
  }
  document.getElementById("scope").dataset.options = "";
  document.getElementById("series").dataset.options = "";
  document.getElementById("scope-choice").hidden = true;
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
  document.getElementById("scope-choice").hidden = false;
  document.getElementById("dashboard").hidden = false;
}

// ---- selectors ----------------------------------------------------------------------------

/** A selector's options as [value, label] pairs, rebuilt only when they change (a rebuild
 * would close the list while the user has it open), and its choice. */
function setOptions(select, options, chosen) {
  const given = JSON.stringify(options);
  if (select.dataset.options !== given) {
    select.replaceChildren(...options.map(([value, label]) => element("option", label, { value })));
    select.dataset.options = given;
  }
  if (chosen !== null) select.value = chosen;
}

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
  const options = summaries.map((summary) => [
    scopeKey(summary.scope), `${summary.name} (${summary.trades} trades)`,
  ]);
  setOptions(document.getElementById("scope"), options, scopeKey(view.scope));
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
  const options = series.map((one) => [
    seriesKey(one), `${one.symbol} ${one.timeframe} ${one.exchange} (${one.price_type})`,
  ]);
  setOptions(document.getElementById("series"), options, view.seriesKey);
}

/** The exchange whose daily rows and positions are shown: the scope's latest trade's. */
function chooseExchange(trades, series) {
  const asked = new URLSearchParams(location.search).get("exchange");
  return asked || trades[0]?.exchange || series[0]?.exchange || "binance";
}

// ---- candles -----------------------------------------------------------------------------

/** The window of a series' last CANDLES_SHOWN candles: `start` and `end` parameters. */
function candleWindow(series) {
  const unit = TIMEFRAME_SECONDS[series.timeframe.slice(-1)] || 60;
  const span = Number.parseInt(series.timeframe, 10) * unit * CANDLES_SHOWN * 1000;
  const last = Date.parse(series.last);
  const start = Math.max(Date.parse(series.first), last - span + 1000);
  return { start: new Date(start).toISOString(), end: new Date(last + 1000).toISOString() };
}

/** The last candles of the chosen series and the trade marks of ``scope`` (its query
 * parameters) on them (no series chosen: an empty chart). */
async function loadCandles(scope) {
  const series = view.series.find((one) => seriesKey(one) === view.seriesKey);
  if (!series) return [{ candles: [] }, []];
  const { symbol, exchange, timeframe, price_type } = series;
  const window = candleWindow(series);
  return Promise.all([
    api("/api/candles", { symbol, exchange, timeframe, price_type, limit: CANDLES_SHOWN, ...window }),
    api("/api/trades/markers", { ...scope, symbol, exchange, ...window }),
  ]);
}

// ---- refresh ------------------------------------------------------------------------------

/** Draw what ``read`` answers with ``draw`` as soon as it comes, unless the token was refused
 * meanwhile; the page's first drawing is its first render. */
async function shown(read, draw) {
  const answer = await read;
  if (view.refused) return;
  showDashboard();
  draw(answer);
  markFirstRender();
}

/** The charts, built the first time one is drawn (their boxes must be visible by then). */
function charts() {
  if (!view.charts) view.charts = createCharts();
  return view.charts;
}

/** Wait for every promise, then fail with the first failure (a refusal before the others). */
async function settled(promises) {
  const failures = (await Promise.allSettled(promises))
    .filter((outcome) => outcome.status === "rejected")
    .map((outcome) => outcome.reason);
  if (failures.length) throw failures.find((reason) => reason instanceof TokenRefused) || failures[0];
}

/** The trades and the stored series, then what needs them: the exchange's daily rows, equity
 * and positions, and the chosen series' candles with the trades' marks. */
async function showByExchange(scope) {
  const [trades, series] = await Promise.all([
    api("/api/trades", { ...scope, limit: TRADES_SHOWN }),
    api("/api/inventory"),
  ]);
  view.exchange = chooseExchange(trades.trades, series);
  renderSeriesChoice(series, trades.trades);
  const onExchange = { ...scope, exchange: view.exchange };
  await settled([
    shown(trades, renderTrades),
    shown(series, renderCoverage),
    shown(api("/api/equity", onExchange), (points) => drawEquity(charts(), points)),
    shown(api("/api/daily", onExchange), (days) => drawDaily(charts(), days)),
    shown(api("/api/positions", onExchange), (rows) => renderPositions(rows, view.exchange)),
    shown(loadCandles(scope), ([candles, marks]) => drawCandles(charts(), candles, marks)),
  ]);
}

/** Every figure of the selected scope, each drawn as soon as it is read: a slow one (the
 * statistics of a long history) holds up no other. */
async function showFigures() {
  renderScopes(await api("/api/scopes"));
  const scope = scopeParams();
  const drawnScope = scopeKey(view.scope);
  await settled([
    shown(api("/api/statistics", scope), renderStatistics),
    shown(api("/api/llm-usage", { ...scope, days: LLM_DAYS }), renderLlmUsage),
    shown(api("/api/events", { ...scope, limit: EVENTS_SHOWN }), renderEvents),
    showByExchange(scope),
  ]);
  return drawnScope;
}

/** Read and draw every figure; a refusal empties the page and stops the refreshing. */
async function refresh() {
  if (view.busy) {
    view.again = true; // a choice made meanwhile: read again once this refresh ends
    return;
  }
  view.busy = true;
  try {
    markShown(await showFigures());
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

/** For the benchmark: the first figure drawn (once). */
function markFirstRender() {
  if (view.rendered) return;
  view.rendered = true;
  requestAnimationFrame(() => performance.mark("iftb-first-render"));
}

/** Every figure of a refresh drawn: on <body>, the scope shown and how many refreshes have
 * drawn; the first time, ``data-rendered`` and the benchmark's mark. */
function markShown(scope) {
  requestAnimationFrame(() => {
    const state = document.body.dataset;
    state.scope = scope;
    state.refreshes = String(Number(state.refreshes || 0) + 1);
    if (!state.rendered) performance.mark("iftb-complete-render");
    state.rendered = "true";
  });
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
