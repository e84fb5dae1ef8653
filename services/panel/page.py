# ruff: noqa: E501  (the page and its script are text served as they are)
"""The panel's page and script (served from the panel itself: nothing is fetched from anywhere else)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gazeflow panel</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/panel.css"></head>
<body>
<header><h1>gazeflow</h1><span id="state" class="pill">connecting</span><span id="summary"></span></header>
<main>
<section class="view"><img id="view" alt="the annotated live view"><p id="viewnote">live view</p></section>
<section class="controls">
 <h2>Pointer</h2>
 <div class="buttons">
  <button data-command="pause">Pause</button><button data-command="resume">Resume</button>
  <button data-command="recenter">Recentre</button> <button data-command="calibrate">Calibrate</button>
 </div>
 <form id="settings">
  <label>click <select name="pointer.click"><option>none</option><option>dwell</option><option>blink</option></select></label>
  <label>dwell time (ms) <input name="pointer.dwell_ms" type="number" min="100" max="5000" step="50"></label>
  <label>dwell radius (px) <input name="pointer.dwell_radius_px" type="number" min="5" max="300" step="5"></label>
  <label>pointer mode <select name="pointer.mode"><option>gaze</option><option>head</option><option>hybrid</option></select></label>
  <label>selection <select name="pointer.select"><option>none</option><option>zoom</option></select></label>
  <label>magnification <input name="pointer.zoom" type="number" min="1.5" max="8" step="0.5"></label>
  <label>filter <select name="pointer.filter"><option>one-euro</option><option>ema</option><option>none</option></select></label>
  <label>steadiness: One Euro cutoff (Hz) <input name="pointer.min_cutoff" type="number" min="0.01" max="10" step="0.01"></label>
  <label>detect the face every N frames (tracked between) <input name="detect_every" type="number" min="1" max="30" step="1"></label>
  <button type="submit">Apply</button> <button type="button" id="save">Save as my defaults</button>
 </form>
 <p id="message" role="status"></p>
 <dl id="pointer"></dl>
</section>
<section class="figures">
 <h2>Stages</h2>
 <table id="stages"><thead><tr><th>stage</th><th>service p50 (ms)</th><th>p95</th><th>inference p50</th>
 <th>queue p50</th><th>frames</th></tr></thead><tbody></tbody></table>
 <h2>Processes</h2>
 <table id="processes"><thead><tr><th>process</th><th>state</th><th>fps</th><th>frames in</th><th>out</th>
 <th>dropped</th><th>lost</th><th>malformed</th><th>restarts</th><th>CPU cores</th><th>memory MB</th></tr></thead><tbody></tbody></table>
 <p id="health"></p>
 <h2>Last minutes</h2>
 <canvas id="fps" width="640" height="120" aria-label="frames a second"></canvas>
 <canvas id="e2e" width="640" height="120" aria-label="end-to-end latency"></canvas>
</section>
</main>
<script src="/panel.js"></script>
</body></html>
"""

STYLE = """
body{font:14px system-ui,sans-serif;margin:0;background:#111;color:#eee}
header{display:flex;gap:1em;align-items:center;padding:.5em 1em;background:#222}
h1{font-size:1.2em;margin:0}h2{font-size:1em;margin:.8em 0 .3em}
.pill{padding:.1em .6em;border-radius:1em;background:#555}.pill.running{background:#1a6e2e}.pill.paused{background:#8a5a00}
main{display:grid;grid-template-columns:minmax(320px,2fr) minmax(280px,1fr);gap:1em;padding:1em}
.view img{width:100%;background:#000;min-height:200px}.figures{grid-column:1/3}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #333;text-align:right}
td:first-child,th:first-child{text-align:left}label{display:block;margin:.3em 0}
input,select{width:8em}button{margin:.2em;padding:.3em .8em}canvas{background:#1b1b1b;display:block;margin:.3em 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2em .8em}dt{color:#aaa}dd{margin:0}
"""

SCRIPT = """
"use strict";
const $ = (s) => document.querySelector(s);
const esc = (v) => String(v).replace(/[<>&"]/g, (c) => ({"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;"})[c]);
let viewEvery = 500, filled = false;
const seen = {};  // each process's frames out a few seconds ago: its fps

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body), credentials: "same-origin"});
  const answer = await r.json().catch(() => ({ok: false, error: r.statusText}));
  $("#message").textContent = answer.ok ? (answer.state || "done") : ("refused: " + answer.error);
  refresh();
}

document.querySelectorAll("button[data-command]").forEach((b) =>
  b.addEventListener("click", () => post("/api/control", {command: b.dataset.command})));
$("#settings").addEventListener("submit", async (e) => {
  e.preventDefault();
  for (const el of e.target.elements) {
    if (el.name && el.dataset.sent !== el.value) {
      el.dataset.sent = el.value;
      await post("/api/set", {key: el.name, value: el.value});
    }
  }
});

$("#save").addEventListener("click", () => post("/api/save", {}));

function chart(canvas, points, key, unit) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  c.clearRect(0, 0, w, h);
  const values = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  if (!values.length) return;
  const top = Math.max(...values) * 1.1 || 1;
  c.strokeStyle = "#4fc3f7"; c.beginPath();
  points.forEach((p, i) => {
    const v = p[key]; if (v === null || v === undefined) return;
    const x = (i / Math.max(1, points.length - 1)) * w, y = h - (v / top) * (h - 14);
    i ? c.lineTo(x, y) : c.moveTo(x, y);
  });
  c.stroke(); c.fillStyle = "#ccc";
  c.fillText(key.replace("_", " ") + ": " + values[values.length - 1] + " " + unit + " (max " + top.toFixed(1) + ")", 6, 12);
}

function fill(status) {
  if (filled || !status.settings) return;
  for (const el of $("#settings").elements) {
    if (el.name && el.name in status.settings) { el.value = status.settings[el.name]; el.dataset.sent = el.value; }
  }
  filled = true;
}

async function refresh() {
  let s;
  try { s = await (await fetch("/api/stats", {credentials: "same-origin"})).json(); }
  catch (e) { $("#state").textContent = "disconnected"; $("#state").className = "pill"; return; }
  const p = s.pointer || {};
  const paused = (p.state || "").startsWith("paused");
  $("#state").textContent = s.ended ? "ended" : (p.state || "running");
  $("#state").className = "pill " + (s.ended ? "" : paused ? "paused" : "running");
  const lost = (p.processes || []).reduce((n, h) => n + (h.lost || 0), 0);
  $("#summary").textContent = `${s.fps.toFixed(1)} fps, end to end p50 ${s.e2e_ms.p50.toFixed(1)} ms, ` +
    `p95 ${s.e2e_ms.p95.toFixed(1)} ms, ${s.frames} frames (${s.frames_with_gaze} with gaze)` +
    (lost ? `, ${lost} lost with a stage that died` : "");
  const rows = Object.entries(s.stages).map(([name, v]) =>
    `<tr><td>${esc(name)}</td><td>${v.service_ms.p50.toFixed(2)}</td><td>${v.service_ms.p95.toFixed(2)}</td>` +
    `<td>${v.infer_ms.p50.toFixed(2)}</td><td>${v.queue_ms.p50.toFixed(2)}</td><td>${esc(v.frames)}</td></tr>`);
  $("#stages tbody").innerHTML = rows.join("");
  const now = Date.now() / 1000;
  const procs = (p.processes || []).map((h) => {
    const use = s.processes[h.name] || {}, before = seen[h.name];
    const fps = before && now > before.t ? ((h.frames_out - before.out) / (now - before.t)).toFixed(1) : "";
    if (!before || now - before.t >= 5) seen[h.name] = {t: now, out: h.frames_out};
    return `<tr><td>${esc(h.name)}</td><td>${esc(h.state)}</td><td>${esc(fps)}</td><td>${esc(h.frames_in)}</td>` +
      `<td>${esc(h.frames_out)}</td><td>${esc(h.dropped)}</td><td>${esc(h.lost)}</td><td>${esc(h.malformed)}</td>` +
      `<td>${esc(h.restarts)}</td><td>${use.cores !== undefined ? use.cores.toFixed(2) : ""}</td>` +
      `<td>${use.rss_mb !== undefined ? esc(use.rss_mb) : ""}</td></tr>`;
  });
  $("#processes tbody").innerHTML = procs.join("");
  $("#health").textContent = p.health || "";
  const shown = ["calibration", "figures", "profile", "click mode", "mode", "select", "action", "live error", "clicks", "moves"];
  $("#pointer").innerHTML = shown.filter((k) => k in p).map((k) => {
    const v = p[k] && typeof p[k] === "object" ? Object.entries(p[k]).map(([a, b]) => `${a} ${b}`).join(", ") : p[k];
    return `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`;
  }).join("");
  fill(p);
  chart($("#fps"), s.history, "fps", "fps");
  chart($("#e2e"), s.history, "e2e_p50_ms", "ms");
  viewEvery = s.view_interval_ms;
  if (!viewEvery) $("#viewnote").textContent = "no live view (panel.view_fps = 0)";
}

function view() {
  if (viewEvery === 0) return setTimeout(view, 2000);  // off: look again later (the figures say it)
  const img = new Image();
  img.onload = () => { const old = $("#view").src; $("#view").src = img.src; if (old.startsWith("blob:")) URL.revokeObjectURL(old); };
  fetch("/api/frame.jpg", {credentials: "same-origin"}).then((r) => r.ok ? r.blob() : null)
    .then((b) => { if (b) img.src = URL.createObjectURL(b); })
    .finally(() => setTimeout(view, viewEvery || 2000));
}

refresh(); setInterval(refresh, 1000); view();
"""
