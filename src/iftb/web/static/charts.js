// iftb dashboard: its three lightweight-charts charts (equity with drawdown, daily PnL, candles
// with trade marks). Loaded before dashboard.js; it draws what dashboard.js has read.
"use strict";

const UP = "#1a9b6c";
const DOWN = "#d64545";
const ACCENT = "#2f6fde";

/** The chart options every chart shares: colours from the stylesheet, sized by its box. */
function chartOptions() {
  const style = getComputedStyle(document.documentElement);
  return {
    autoSize: true,
    layout: {
      background: { color: style.getPropertyValue("--panel").trim() },
      textColor: style.getPropertyValue("--muted").trim(),
      attributionLogo: false,
    },
    grid: {
      vertLines: { color: style.getPropertyValue("--line").trim() },
      horzLines: { color: style.getPropertyValue("--line").trim() },
    },
    timeScale: { borderVisible: false },
    rightPriceScale: { borderVisible: false },
  };
}

/** The three charts and their series, built once and fed on every refresh. */
function createCharts() {
  const lc = window.LightweightCharts;
  const equity = lc.createChart(document.getElementById("equity-chart"), chartOptions());
  const daily = lc.createChart(document.getElementById("daily-chart"), chartOptions());
  const candles = lc.createChart(document.getElementById("candle-chart"), {
    ...chartOptions(),
    timeScale: { timeVisible: true, borderVisible: false },
  });
  const candle = candles.addSeries(lc.CandlestickSeries, {
    upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false,
  });
  const charts = {
    equity,
    daily,
    candles,
    balance: equity.addSeries(lc.LineSeries, { color: ACCENT, lineWidth: 2 }),
    // drawdown below the peak, in a smaller pane of its own under the balance
    drawdown: equity.addSeries(lc.AreaSeries, {
      lineColor: DOWN, topColor: "rgba(214,69,69,0.4)", bottomColor: "rgba(214,69,69,0.05)",
      lineWidth: 1,
    }, 1),
    pnl: daily.addSeries(lc.HistogramSeries, { priceLineVisible: false }),
    candle,
    markers: lc.createSeriesMarkers(candle, []),
  };
  equity.panes()[1].setStretchFactor(0.4);
  return charts;
}

/** The balance line and its drawdown (shown negative: below the peak). */
function drawEquity(charts, points) {
  charts.balance.setData(points.map((point) => ({ time: point.date, value: Number(point.balance) })));
  charts.drawdown.setData(points.map((point) => ({ time: point.date, value: -Number(point.drawdown) })));
  charts.equity.timeScale().fitContent();
}

/** One bar a day: its net PnL, green for a gain and red for a loss. */
function drawDaily(charts, days) {
  charts.pnl.setData(days.map((day) => ({
    time: day.date,
    value: Number(day.net_pnl),
    color: day.net_pnl.startsWith("-") ? DOWN : UP,
  })));
  charts.daily.timeScale().fitContent();
}

/** An API time (ISO-8601, UTC) as the charts' time: seconds since the epoch. */
function seconds(iso) {
  return Math.floor(Date.parse(iso) / 1000);
}

/** Candles of the chosen series, with the scope's entries and exits marked on them. */
function drawCandles(charts, page, marks) {
  charts.candle.setData(page.candles.map((bar) => ({
    time: seconds(bar.time),
    open: Number(bar.open),
    high: Number(bar.high),
    low: Number(bar.low),
    close: Number(bar.close),
  })));
  charts.markers.setMarkers(marks.map(marker));
}

/** One trade mark: an arrow up where the trade bought, down where it sold; an entry names its
 * side, an exit its realized PnL (green a gain, red a loss). */
function marker(mark) {
  const buying = (mark.kind === "entry") === (mark.side === "long");
  const loss = mark.realized_pnl !== null && mark.realized_pnl.startsWith("-");
  return {
    time: seconds(mark.time),
    position: buying ? "belowBar" : "aboveBar",
    shape: buying ? "arrowUp" : "arrowDown",
    color: mark.kind === "entry" ? ACCENT : loss ? DOWN : UP,
    text: mark.kind === "entry" ? mark.side : mark.realized_pnl ?? "exit",
  };
}
