// skal label: the labeling page. Plain JavaScript, no build step.
// The server is the source of truth: a tile shows "saved" only after the server
// replied that the answer is on disk.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const view = {
  state: null,          // last /api/state
  round: null,          // round of the batch on screen
  items: [],            // [{id, label, skipped, score, rank, guess, confidence}]
  focus: 0,
  selected: new Set(),
  undo: [],             // [{answers: [{id, label, skip}]}]: what to send to undo one action
  lastAction: performance.now(),
  pending: new Map(),   // id -> number of saves in flight
  showGuess: false,
  pollTimer: null,
  submitting: false,
};

const $ = (id) => document.getElementById(id);

function headers() {
  const h = {"Content-Type": "application/json"};
  if (TOKEN) h["X-Skal-Token"] = TOKEN;
  return h;
}

function withToken(url) {
  return TOKEN ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : url;
}

async function api(path, body) {
  const options = body === undefined ? {headers: headers()} :
    {method: "POST", headers: headers(), body: JSON.stringify(body)};
  const response = await fetch(withToken(path), options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

function say(text, isError) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
  box.classList.toggle("error", !!isError);
}

// ---- view settings carried across tiles and sessions --------------------------------
function applyView() {
  const root = document.documentElement.style;
  root.setProperty("--brightness", $("brightness").value);
  root.setProperty("--contrast", $("contrast").value);
  root.setProperty("--tile", $("zoom").value + "px");
  for (const id of ["brightness", "contrast", "zoom"]) localStorage.setItem("skal." + id, $(id).value);
}

function restoreView() {
  for (const id of ["brightness", "contrast", "zoom"]) {
    const saved = localStorage.getItem("skal." + id);
    if (saved !== null) $(id).value = saved;
  }
  applyView();
}

// ---- rendering ------------------------------------------------------------------------
function answerText(item) {
  if (item.label) return item.label;
  if (item.skipped) return "unsure / skip";
  return "no answer";
}

function renderTile(tile, item, index) {
  tile.classList.toggle("answered", !!item.label);
  tile.classList.toggle("skipped", !!item.skipped);
  tile.classList.toggle("focused", index === view.focus);
  tile.classList.toggle("selected", view.selected.has(item.id));
  const answer = tile.querySelector(".answer");
  answer.textContent = answerText(item);
  answer.classList.toggle("none", !item.label && !item.skipped);
  const guess = tile.querySelector(".guess");
  guess.hidden = !view.showGuess || item.guess === undefined || item.guess === null;
  if (!guess.hidden) guess.textContent = `model: ${item.guess} (${Math.round(item.confidence * 100)}%)`;
  const saved = tile.querySelector(".saved");
  const inFlight = view.pending.get(item.id) || 0;
  saved.textContent = inFlight ? "saving…" : (item.label || item.skipped ? "saved ✓" : "");
  saved.className = "saved " + (inFlight ? "pending" : "ok");
}

function buildGrid() {
  const grid = $("grid");
  grid.replaceChildren();
  const batch = view.state.batch;
  grid.classList.toggle("empty", !batch);
  if (!batch) {
    grid.textContent = view.state.done ? "Every image is labeled. Export your labels on the right." :
      "Waiting for the next batch…";
    return;
  }
  view.items.forEach((item, index) => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.id = item.id;
    tile.dataset.index = index;
    tile.title = item.file;
    const img = document.createElement("img");
    img.alt = `item ${item.id}`;
    img.src = withToken(`/api/items/${item.id}/image`);
    const answer = document.createElement("div");
    answer.className = "answer";
    const why = document.createElement("div");
    why.className = "why";
    why.textContent = batch.method === "random" ? `${batch.score_name} · #${item.rank}` :
      `${batch.score_name} ${item.score === null ? "n/a" : formatScore(item.score)} · ` +
      `rank ${item.rank} of ${batch.pool_size}`;
    const guess = document.createElement("div");
    guess.className = "guess";
    const saved = document.createElement("span");
    saved.className = "saved";
    tile.append(img, answer, why, guess, saved);
    tile.addEventListener("click", (event) => clickTile(event, index));
    grid.append(tile);
    renderTile(tile, item, index);
  });
}

function formatScore(value) {
  return Math.abs(value) >= 100 || (Math.abs(value) < 0.001 && value !== 0) ?
    value.toExponential(2) : value.toFixed(3);
}

function renderTiles() {
  document.querySelectorAll(".tile").forEach((tile) => {
    const index = Number(tile.dataset.index);
    renderTile(tile, view.items[index], index);
  });
}

function renderHeader() {
  const s = view.state;
  $("project").textContent = s.project;
  $("round").textContent = `round ${s.round} · model v${s.model_version} · annotator ${s.annotator}`;
  const classes = $("classes");
  classes.replaceChildren();
  s.classes.forEach((name, k) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.cls = name;
    const key = document.createElement("kbd");
    key.textContent = k < 9 ? String(k + 1) : "";
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = s.counts.per_class[name];
    button.append(key, document.createTextNode(name), count);
    button.addEventListener("click", () => assign({label: name}));
    classes.append(button);
  });
  const skip = document.createElement("button");
  skip.type = "button";
  const key = document.createElement("kbd");
  key.textContent = "0";
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = s.counts.skipped;
  skip.append(key, document.createTextNode("unsure / skip"), count);
  skip.addEventListener("click", () => assign({skip: true}));
  classes.append(skip);
  const answered = view.items.filter((i) => i.label || i.skipped).length;
  $("progress").textContent = s.batch ?
    `batch: ${answered} / ${view.items.length} answered · ${s.counts.labeled} labeled of ${s.counts.items}` :
    `${s.counts.labeled} labeled of ${s.counts.items}`;
  const w = s.worker;
  const worker = $("worker");
  worker.classList.toggle("error", w.stage === "error");
  worker.textContent = w.stage === "idle" ? "" : w.stage === "error" ? `retraining failed: ${w.message}` :
    `${w.stage}…`;
  $("retry").hidden = w.stage !== "error";
  const bar = $("worker-bar");
  bar.hidden = !(w.stage === "training" || w.stage === "querying");
  bar.value = w.fraction || 0;
  const batch = s.batch;
  $("why").textContent = batch ? `Picked by ${batch.method}: ${batch.description}.` : "";
  const acc = s.accuracy;
  $("accuracy").textContent = acc.value === null ?
    `Held-out accuracy appears once ${acc.min_holdout} of your labels are held out (${acc.n_holdout} so far).` :
    `Held-out accuracy ${(acc.value * 100).toFixed(1)}% on ${acc.n_holdout} of your labels (never trained on).`;
  const curve = $("curve");
  if (s.curve_points > 0) {
    const src = withToken(`/api/curve.svg?v=${s.model_version}`);
    if (curve.getAttribute("src") !== src) curve.src = src;
    curve.hidden = false;
  }
  $("submit").disabled = !batch || view.submitting;
  $("undo").disabled = view.undo.length === 0;
}

// ---- state from the server ------------------------------------------------------------
async function refresh() {
  let s;
  try {
    s = await api(`/api/state?guesses=${view.showGuess ? 1 : 0}`);
  } catch (e) {
    say(`Cannot reach the server: ${e.message}`, true);
    return schedule(3000);
  }
  const newRound = s.batch ? s.batch.round : null;
  view.state = s;
  if (newRound !== view.round || (s.batch && view.items.length !== s.batch.items.length)) {
    view.round = newRound;
    view.items = s.batch ? s.batch.items.map((i) => ({...i})) : [];
    view.focus = 0;
    view.selected.clear();
    view.undo = [];
    view.submitting = false;
    view.lastAction = performance.now();
    buildGrid();
    if (s.batch) $("grid").focus();
  } else if (s.batch) {
    // Answers saved by another tab; never overwrite a tile whose save is in flight.
    s.batch.items.forEach((fresh, k) => {
      const mine = view.items[k];
      if (!view.pending.get(mine.id)) {
        mine.label = fresh.label;
        mine.skipped = fresh.skipped;
      }
      mine.guess = fresh.guess;
      mine.confidence = fresh.confidence;
    });
    renderTiles();
  } else {
    buildGrid();
  }
  renderHeader();
  const busy = s.worker.stage === "training" || s.worker.stage === "querying" || !s.batch;
  schedule(busy && !s.done ? 500 : 3000);
}

function schedule(ms) {
  clearTimeout(view.pollTimer);
  view.pollTimer = setTimeout(refresh, ms);
}

// ---- answering ------------------------------------------------------------------------
function targets() {
  if (view.selected.size) return view.items.filter((i) => view.selected.has(i.id));
  return view.items[view.focus] ? [view.items[view.focus]] : [];
}

function answerOf(item) {
  return item.label ? {label: item.label} : item.skipped ? {skip: true} : {label: null};
}

async function save(items, value, recordUndo) {
  if (!items.length || view.round === null) return;
  const now = performance.now();
  const seconds = (now - view.lastAction) / 1000 / items.length;
  view.lastAction = now;
  const before = items.map((i) => ({id: i.id, ...answerOf(i)}));
  items.forEach((i) => {
    i.label = value.label || null;
    i.skipped = !!value.skip;
    view.pending.set(i.id, (view.pending.get(i.id) || 0) + 1);
  });
  renderTiles();
  const body = {round: view.round, answers: items.map((i) => ({
    id: i.id, label: value.label || null, skip: !!value.skip,
    seconds: Math.round(seconds * 1000) / 1000, guess_shown: view.showGuess && i.guess != null,
  }))};
  try {
    const reply = await api("/api/answers", body);
    if (recordUndo) view.undo.push(before);
    view.state.counts = reply.counts;
    say("");
  } catch (e) {
    before.forEach((b) => {  // the server wrote nothing: show what is on disk
      const item = view.items.find((i) => i.id === b.id);
      item.label = b.label || null;
      item.skipped = !!b.skip;
    });
    say(`Not saved: ${e.message}`, true);
  } finally {
    items.forEach((i) => view.pending.set(i.id, view.pending.get(i.id) - 1));
    renderTiles();
    renderHeader();
  }
}

async function assign(value) {
  const items = targets();
  const single = !view.selected.size;
  view.selected.clear();
  const saving = save(items, value, true);  // updates the tiles at once, then waits for the disk
  if (single && (value.label || value.skip)) {
    // Move on to the next tile without an answer now, so fast typing labels tile after tile.
    const next = view.items.findIndex((i, k) => k > view.focus && !i.label && !i.skipped);
    if (next >= 0) moveFocus(next);
  }
  await saving;
}

async function undo() {
  const last = view.undo.pop();
  if (!last) return;
  // Undo one action: put back each tile's previous answer (several tiles after a multi-assign).
  const groups = new Map();
  last.forEach((b) => {
    const key = b.label ? "l:" + b.label : b.skip ? "skip" : "none";
    if (!groups.has(key)) groups.set(key, {value: b.label ? {label: b.label} : b.skip ? {skip: true} : {}, ids: []});
    groups.get(key).ids.push(b.id);
  });
  for (const {value, ids} of groups.values()) {
    await save(view.items.filter((i) => ids.includes(i.id)), value, false);
  }
}

async function submit() {
  const missing = view.items.filter((i) => !i.label && !i.skipped).length;
  if (missing) {
    say(`${missing} tile(s) have no answer yet: give a class or mark unsure/skip (0).`, true);
    return;
  }
  if ([...view.pending.values()].some((n) => n > 0)) {
    say("Still saving; press Enter again in a moment.", true);
    return;
  }
  view.submitting = true;
  renderHeader();
  try {
    await api("/api/submit", {round: view.round});
    say("Batch submitted. The model is retraining; the next batch appears here.");
    schedule(200);
  } catch (e) {
    view.submitting = false;
    say(`Not submitted: ${e.message}`, true);
    renderHeader();
  }
}

// ---- focus, selection, keys -----------------------------------------------------------
function columns() {
  const tiles = document.querySelectorAll(".tile");
  if (!tiles.length) return 1;
  const top = tiles[0].offsetTop;
  let n = 0;
  for (const t of tiles) { if (t.offsetTop !== top) break; n++; }
  return Math.max(n, 1);
}

function moveFocus(index, extend) {
  if (!view.items.length) return;
  index = Math.max(0, Math.min(view.items.length - 1, index));
  if (extend) {
    view.selected.add(view.items[view.focus].id);
    view.selected.add(view.items[index].id);
  }
  view.focus = index;
  renderTiles();
  const tile = document.querySelector(`.tile[data-index="${index}"]`);
  if (tile) tile.scrollIntoView({block: "nearest"});
}

function clickTile(event, index) {
  if (event.shiftKey || event.ctrlKey || event.metaKey) {
    const id = view.items[index].id;
    if (view.selected.has(id)) view.selected.delete(id); else view.selected.add(id);
  }
  view.focus = index;
  renderTiles();
  $("grid").focus();
}

function onKey(event) {
  const s = view.state;
  if (!s || !s.batch) return;
  const key = event.key;
  const target = event.target;
  if (target.tagName === "BUTTON" && (key === "Enter" || key === " ")) return;  // its own click
  if (target.tagName === "INPUT") {
    // Sliders and the checkbox keep their own keys; digits and Enter still label and submit.
    if (target.type !== "range" && target.type !== "checkbox") return;
    if (key.startsWith("Arrow") || key === " " || key === "Home" || key === "End") return;
  }
  const cols = columns();
  const moves = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols};
  if (key in moves) {
    moveFocus(view.focus + moves[key], event.shiftKey);
  } else if (/^[1-9]$/.test(key) && !event.ctrlKey && !event.metaKey) {
    const k = Number(key) - 1;
    if (k < s.classes.length) assign({label: s.classes[k]});
  } else if (key === "0" || key === "s") {
    assign({skip: true});
  } else if (key === "Backspace" || key === "Delete") {
    assign({});
  } else if (key === "u" || (key === "z" && (event.ctrlKey || event.metaKey))) {
    undo();
  } else if (key === " ") {
    const id = view.items[view.focus].id;
    if (view.selected.has(id)) view.selected.delete(id); else view.selected.add(id);
    renderTiles();
  } else if (key === "a" && !event.ctrlKey) {
    view.items.forEach((i) => view.selected.add(i.id));
    renderTiles();
  } else if (key === "Escape") {
    view.selected.clear();
    renderTiles();
  } else if (key === "Enter") {
    submit();
  } else {
    return;
  }
  event.preventDefault();
}

function start() {
  restoreView();
  for (const id of ["brightness", "contrast", "zoom"]) $(id).addEventListener("input", applyView);
  $("reset-view").addEventListener("click", () => {
    $("brightness").value = 1; $("contrast").value = 1; $("zoom").value = 192; applyView();
  });
  $("show-guess").checked = false;  // off by default: a shown guess anchors the annotator
  $("show-guess").addEventListener("change", (e) => { view.showGuess = e.target.checked; refresh(); });
  $("undo").addEventListener("click", undo);
  $("retry").addEventListener("click", async () => {
    try { await api("/api/retry", {}); say(""); } catch (e) { say(`Retry failed: ${e.message}`, true); }
    schedule(200);
  });
  $("submit").addEventListener("click", submit);
  $("export-csv").href = withToken("/api/export.csv");
  $("export-jsonl").href = withToken("/api/export.jsonl");
  document.addEventListener("keydown", onKey);
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
