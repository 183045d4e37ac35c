// 利用状況: active staff and messages per day (SVG charts drawn here, no library), and messages per 所属.
// Every chart has the same numbers in a table, for screen readers and for copying into reports.
import { get } from "../api.js";
import { clear, h, svg } from "../dom.js";
import { t } from "../i18n.js";

const W = 720;
const H = 220;
const PAD = { top: 16, right: 16, bottom: 36, left: 44 };

function niceMax(values) {
  const max = Math.max(1, ...values);
  const magnitude = 10 ** Math.floor(Math.log10(max));
  return Math.ceil(max / magnitude) * magnitude;
}

/** A bar (messages) + line (active staff) chart over days. */
function chart(days, bars, line, { title, desc }) {
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const yMax = niceMax([...bars, ...line]);
  const x = (i) => PAD.left + (innerW * (i + 0.5)) / days.length;
  const y = (v) => PAD.top + innerH - (innerH * v) / yMax;
  const barW = Math.max(2, (innerW / days.length) * 0.6);
  const titleId = `chart-title-${Math.random().toString(36).slice(2, 7)}`;
  const descId = `${titleId}-desc`;
  const ticks = [0, yMax / 2, yMax];
  const labelEvery = Math.ceil(days.length / 8);
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-labelledby": `${titleId} ${descId}` },
    svg("title", { id: titleId, text: title }),
    svg("desc", { id: descId, text: desc }),
    ticks.map((v) => [
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(v) + 4, class: "axis-label", "text-anchor": "end", text: String(Math.round(v)) }),
    ]),
    bars.map((v, i) => svg("rect", { x: x(i) - barW / 2, y: y(v), width: barW, height: Math.max(0, PAD.top + innerH - y(v)),
      class: "bar" })),
    svg("polyline", { points: line.map((v, i) => `${x(i)},${y(v)}`).join(" "), class: "line" }),
    line.map((v, i) => svg("circle", { cx: x(i), cy: y(v), r: 3, class: "dot" })),
    days.map((d, i) => (i % labelEvery === 0 || i === days.length - 1
      ? svg("text", { x: x(i), y: H - 12, class: "axis-label", "text-anchor": "middle", text: d.slice(5) }) : null)));
}

export async function renderUsage(body) {
  const period = h("select", { id: "usage-days", class: "input input-small" },
    [7, 30, 90].map((d) => h("option", { value: String(d), selected: d === 30, text: t("admin.usage.days", { count: d }) })));
  const out = h("div", { class: "usage" });
  body.append(h("div", { class: "filters" },
    h("div", { class: "field" }, h("label", { for: "usage-days", text: t("admin.usage.period") }), period)), out);
  const load = async () => {
    const data = await get(`/api/admin/usage?days=${period.value}`);
    const totalMessages = data.messages.reduce((a, b) => a + b, 0);
    const peak = Math.max(0, ...data.active_users);
    const maxDept = Math.max(1, ...data.departments.map((d) => d.total));
    clear(out).append(
      h("ul", { class: "stats" },
        h("li", {}, h("span", { class: "stat-value", text: String(data.active_accounts) }),
          h("span", { class: "stat-label", text: t("admin.usage.accounts") })),
        h("li", {}, h("span", { class: "stat-value", text: String(data.active_users[data.active_users.length - 1] || 0) }),
          h("span", { class: "stat-label", text: t("admin.usage.activeToday") })),
        h("li", {}, h("span", { class: "stat-value", text: String(peak) }),
          h("span", { class: "stat-label", text: t("admin.usage.peak") })),
        h("li", {}, h("span", { class: "stat-value", text: String(totalMessages) }),
          h("span", { class: "stat-label", text: t("admin.usage.totalMessages") }))),
      h("figure", { class: "chart-figure" },
        chart(data.days, data.messages, data.active_users, {
          title: t("admin.usage.chartTitle", { from: data.from, to: data.to }),
          desc: t("admin.usage.chartDesc", { messages: totalMessages, peak }) }),
        h("figcaption", {}, h("span", { class: "legend legend-bar", text: t("admin.usage.messages") }),
          h("span", { class: "legend legend-line", text: t("admin.usage.active") }))),
      h("h3", { text: t("admin.usage.byDepartment") }),
      data.departments.length ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("caption", { text: t("admin.usage.byDepartmentCaption", { from: data.from, to: data.to }) }),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("admin.usage.col.department") }),
          h("th", { scope: "col", text: t("admin.usage.col.total") }),
          h("th", { scope: "col", text: t("admin.usage.col.last7") }),
          h("th", { scope: "col", text: t("admin.usage.col.share") }))),
        h("tbody", {}, data.departments.map((d) => h("tr", {},
          h("th", { scope: "row", text: d.affiliation || t("admin.usage.noDepartment") }),
          h("td", { class: "num", text: String(d.total) }),
          h("td", { class: "num", text: String(d.counts.slice(-7).reduce((a, b) => a + b, 0)) }),
          h("td", {}, svg("svg", { viewBox: "0 0 100 10", class: "share", "aria-hidden": "true", focusable: "false" },
            svg("rect", { x: 0, y: 0, width: (100 * d.total) / maxDept, height: 10, class: "bar" }))))))))
        : h("p", { class: "empty", text: t("admin.usage.noData") }),
      h("details", { class: "data-table" }, h("summary", { text: t("admin.usage.daily") }),
        h("div", { class: "table-wrap" }, h("table", { class: "table" },
          h("caption", { text: t("admin.usage.dailyCaption") }),
          h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("admin.usage.col.date") }),
            h("th", { scope: "col", text: t("admin.usage.active") }), h("th", { scope: "col", text: t("admin.usage.messages") }))),
          h("tbody", {}, data.days.map((day, i) => h("tr", {}, h("th", { scope: "row", text: day }),
            h("td", { class: "num", text: String(data.active_users[i]) }),
            h("td", { class: "num", text: String(data.messages[i]) }))))))));
  };
  period.addEventListener("change", load);
  await load();
}
