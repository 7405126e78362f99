// skal label: the labeling page. Plain JavaScript, no build step.
// The server is the source of truth: a tile shows "saved" only after the server
// replied that the answer is on disk.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const view = {
  state: null,          // last /api/state
  round: null,          // round of the batch on screen
  items: [],            // [{id, label, skipped, score, rank, sentence, guess, confidence,
                        //   changedFrom}]
  focus: 0,
  selected: new Set(),
  undo: [],             // [[{id, label, skip, changedFrom}]]: what puts back one action
  confirm: null,        // {key, ids, value}: a change to saved answers waiting for its key again
  mode: "label",        // "label" (the batch) or "review" (submitted labels)
  enlarged: false,      // the focused tile's image shown full size
  review: {offset: 0, limit: 25, total: 0, items: [], focus: 0},
  refreshSeq: 0,
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

function valueText(value) {
  return value.label ? value.label : value.skip ? "unsure / skip" : "no answer";
}

function isAnswered(item) {
  return !!(item.label || item.skipped);
}

function sameAnswer(item, value) {
  return (item.label || null) === (value.label || null) && !!item.skipped === !!value.skip;
}

// Whether the item's saved answer would change by the key waiting for confirmation.
function isConfirming(item) {
  const c = view.confirm;
  return !!c && c.ids.includes(item.id) && !sameAnswer(item, c.value);
}

// What a tile's answer line says: the answer, a change waiting for its key, or a confirmed change.
function answerLine(item) {
  const c = view.confirm;
  if (isConfirming(item)) {
    return `${answerText(item)} → ${valueText(c.value)}? ${c.prompt}`;
  }
  const text = answerText(item);
  return item.changedFrom !== undefined ? `${text} (changed from ${item.changedFrom})` : text;
}

// The tile's "why": the strategy's plain-words sentence, with its number and rank one click away.
// "of" is the number of candidates at that pick's step (a cluster's size for the cluster
// rules); older batches lack it and ranked the whole pool.
function whyNumbers(batch, item) {
  return `${batch.score_name} ${item.score == null ? "n/a" : formatScore(item.score)} · ` +
    `rank ${item.rank} of ${item.of ?? batch.pool_size}`;
}

function buildWhy(batch, item) {
  const why = document.createElement("div");
  why.className = "why";
  if (!item.sentence) {  // a server or strategy without sentences: the number is all there is
    why.textContent = whyNumbers(batch, item);
    return why;
  }
  const sentence = document.createElement("div");
  sentence.className = "sentence";
  sentence.textContent = item.sentence;
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "score";
  const numbers = document.createElement("span");
  numbers.className = "numbers";
  numbers.textContent = whyNumbers(batch, item);
  details.append(summary, numbers);
  why.append(sentence, details);
  return why;
}

function renderTile(tile, item, index) {
  tile.classList.toggle("answered", !!item.label);
  tile.classList.toggle("skipped", !!item.skipped);
  tile.classList.toggle("focused", index === view.focus);
  tile.classList.toggle("selected", view.selected.has(item.id));
  tile.classList.toggle("confirming", isConfirming(item));
  tile.classList.toggle("changed", item.changedFrom !== undefined);
  const answer = tile.querySelector(".answer");
  answer.textContent = answerLine(item);
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
    const why = buildWhy(batch, item);
    const guess = document.createElement("div");
    guess.className = "guess";
    const saved = document.createElement("span");
    saved.className = "saved";
    const enlarge = document.createElement("button");
    enlarge.type = "button";
    enlarge.className = "enlarge";
    enlarge.title = "enlarge (z)";
    enlarge.setAttribute("aria-label", "enlarge");
    enlarge.textContent = "⤢";
    enlarge.addEventListener("click", (event) => {
      event.stopPropagation();
      clickTile(event, index);
      openEnlarged();
    });
    tile.append(img, enlarge, answer, why, guess, saved);
    tile.addEventListener("click", (event) => clickTile(event, index));
    tile.addEventListener("dblclick", () => openEnlarged());
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
  renderEnlarged();
}

// ---- training progress ----------------------------------------------------------------
function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

// The worker's line: "training 42% · about 1 min 05 s left" (fraction and eta from the server).
function formatWorker(w) {
  if (!w || w.stage === "idle") return "";
  if (w.stage === "error") return `retraining failed: ${w.message}`;
  let text = w.stage;
  if (w.fraction !== null && w.fraction !== undefined) text += ` ${Math.floor(w.fraction * 100)}%`;
  if (w.eta_seconds !== null && w.eta_seconds !== undefined) {
    text += ` · about ${formatDuration(w.eta_seconds)} left`;
  }
  return text;
}

// The stopping verdict the server stored with the model (skal.stopping.assess):
// its sentence as written there, and what the stabilizing-predictions rule concludes.
function formatStopping(verdict) {
  if (!verdict) return "When to stop: shown once a model is trained.";
  let text = `When to stop: ${verdict.sentence}.`;
  if (verdict.stable) text += " The models have stopped changing their minds: labeling more is unlikely to change the predictions.";
  return text;
}

function renderHeader() {
  const s = view.state;
  $("project").textContent = s.project;
  const picked = s.batch && s.batch.model_version !== undefined ?
    `batch picked by model v${s.batch.model_version} · ` : "";
  $("round").textContent = `round ${s.round} · ${picked}latest model v${s.model_version} · ` +
    `annotator ${s.annotator}`;
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
    button.addEventListener("click", () => assign({label: name}, "click:" + name));
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
  skip.addEventListener("click", () => assign({skip: true}, "click:skip"));
  classes.append(skip);
  const answered = view.items.filter((i) => i.label || i.skipped).length;
  $("progress").textContent = s.batch ?
    `batch: ${answered} / ${view.items.length} answered · ${s.counts.labeled} labeled of ${s.counts.items}` :
    `${s.counts.labeled} labeled of ${s.counts.items}`;
  const w = s.worker;
  const worker = $("worker");
  worker.classList.toggle("error", w.stage === "error");
  worker.textContent = formatWorker(w);
  $("retry").hidden = w.stage !== "error";
  // The next batch, chosen ahead while this one is labeled (absent in the synchronous mode).
  const next = s.next_batch;
  $("next-batch").textContent = next ?
    `next batch ready (picked by model v${next.model_version})` : "";
  const bar = $("worker-bar");
  bar.hidden = !(w.stage === "training" || w.stage === "querying");
  bar.value = w.fraction || 0;
  const batch = s.batch;
  $("why").textContent = batch ? `Picked by ${batch.method}: ${batch.description}.` : "";
  const acc = s.accuracy;
  $("accuracy").textContent = acc.value === null ?
    `Held-out accuracy appears once ${acc.min_holdout} of your labels are held out (${acc.n_holdout} so far).` :
    `Held-out accuracy ${(acc.value * 100).toFixed(1)}% on ${acc.n_holdout} of your labels (never trained on).`;
  $("stopping").textContent = formatStopping(s.stopping);
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
function firstUnanswered(after = -1) {
  const n = view.items.length;
  for (let step = 1; step <= n; step++) {  // the next one after `after`, wrapping around
    const k = (after + step + n) % n;
    if (!isAnswered(view.items[k])) return k;
  }
  return -1;
}

async function refresh() {
  let s;
  const seq = ++view.refreshSeq;
  try {
    s = await api(`/api/state?guesses=${view.showGuess ? 1 : 0}`);
  } catch (e) {
    if (seq !== view.refreshSeq) return;
    view.offline = true;
    say(`Cannot reach the server: ${e.message}`, true);
    return schedule(3000);
  }
  if (seq !== view.refreshSeq) return;  // a later refresh started: its reply is the newer one
  if (view.offline) { view.offline = false; say(""); }
  const newRound = s.batch ? s.batch.round : null;
  view.state = s;
  if (newRound !== view.round || (s.batch && view.items.length !== s.batch.items.length)) {
    const hadBatch = view.round !== null;
    view.round = newRound;
    view.items = s.batch ? s.batch.items.map((i) => ({...i})) : [];
    // A keystroke must land on work still to do: the first tile without an answer.
    view.focus = Math.max(firstUnanswered(), 0);
    view.selected.clear();
    view.undo = [];
    view.confirm = null;
    view.submitting = false;
    view.lastAction = performance.now();
    if (hadBatch || s.batch) say("");  // "Batch submitted…" ends when the next batch is here
    buildGrid();
    if (s.batch && view.mode === "label") {
      $("grid").focus({preventScroll: true});
      window.scrollTo(0, 0);  // the header, the sliders and row 1 in view
      scrollToFocus();
    }
    renderEnlarged();
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
// A saved answer changes only by a deliberate act: the same key (or button) twice in a row.
// Prodigy changes an answer only after going back to it (undo), Label Studio only through its
// Update button: never by a stray key. A second press keeps keyboard labeling fast, and a slip
// lands on a visible prompt, not on disk.
function cancelConfirm() {
  if (!view.confirm) return false;
  view.confirm = null;
  say("");
  renderTiles();
  renderReview();
  return true;
}

function askConfirm(key, items, value, what) {
  const again = key.startsWith("click:") ? `click “${valueText(value)}” again` :
    `press ${keyName(key)} again`;
  view.confirm = {key, ids: items.map((i) => i.id), value, prompt: again};
  const changing = items.filter((i) => isAnswered(i) && !sameAnswer(i, value));
  const old = [...new Set(changing.map(answerText))].join(", ");
  say(`${what} saved as “${old}”. To change it to “${valueText(value)}”, ${again}; ` +
      "any other key keeps it.");
  renderTiles();
  renderReview();
}

function confirmed(key, items) {
  const c = view.confirm;
  return !!c && c.key === key && c.ids.length === items.length &&
    items.every((i) => c.ids.includes(i.id));
}

function keyName(key) {
  return key === "Backspace" || key === "Delete" ? key : `“${key}”`;
}

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
  const before = items.map((i) => ({id: i.id, ...answerOf(i), changedFrom: i.changedFrom}));
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
    // A save that lands after the next key press must not wipe that key's confirm prompt.
    if (!view.confirm) say("");
  } catch (e) {
    before.forEach((b) => {  // the server wrote nothing: show what is on disk
      const item = view.items.find((i) => i.id === b.id);
      item.label = b.label || null;
      item.skipped = !!b.skip;
      item.changedFrom = b.changedFrom;
    });
    say(`Not saved: ${e.message}`, true);
  } finally {
    items.forEach((i) => view.pending.set(i.id, view.pending.get(i.id) - 1));
    renderTiles();
    renderHeader();
  }
}

async function assign(value, key) {
  const items = targets();
  if (!items.length) return;
  const changing = items.filter((i) => isAnswered(i) && !sameAnswer(i, value));
  if (changing.length && !confirmed(key, items)) {
    const what = changing.length === 1 ? `Tile ${view.items.indexOf(changing[0]) + 1} is` :
      `${changing.length} of the selected tiles are`;
    askConfirm(key, items, value, what);
    return;
  }
  if (view.confirm) { view.confirm = null; say(""); }
  const single = !view.selected.size;
  view.selected.clear();
  const todo = items.filter((i) => !sameAnswer(i, value));
  const old = new Map(todo.filter(isAnswered).map((i) => [i.id, answerText(i)]));
  const saving = save(todo, value, true);  // updates the tiles at once, then waits for the disk
  todo.forEach((i) => {
    // "changed from" names the first saved answer, and goes when the tile is back to it.
    if (old.has(i.id) && i.changedFrom === undefined) i.changedFrom = old.get(i.id);
    if (i.changedFrom === answerText(i)) i.changedFrom = undefined;
  });
  if (single && (value.label || value.skip)) {
    // Move on to the next tile without an answer now, so fast typing labels tile after tile.
    const next = firstUnanswered(view.focus);
    if (next >= 0) moveFocus(next);
  }
  renderTiles();
  await saving;
}

async function undo() {
  const last = view.undo.pop();
  if (!last) return;
  view.confirm = null;
  // The next key belongs to the tile just put back, not to the one after it.
  const index = view.items.findIndex((i) => i.id === last[0].id);
  if (index >= 0) moveFocus(index);
  // Undo one action: put back each tile's previous answer (several tiles after a multi-assign).
  const groups = new Map();
  last.forEach((b) => {
    const key = b.label ? "l:" + b.label : b.skip ? "skip" : "none";
    if (!groups.has(key)) groups.set(key, {value: b.label ? {label: b.label} : b.skip ? {skip: true} : {}, ids: []});
    groups.get(key).ids.push(b.id);
  });
  for (const {value, ids} of groups.values()) {
    const items = view.items.filter((i) => ids.includes(i.id));
    const saving = save(items, value, false);
    items.forEach((i) => { i.changedFrom = last.find((b) => b.id === i.id).changedFrom; });
    renderTiles();
    await saving;
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
    await refresh();
    if (!view.state.batch && !view.state.done) {
      say("Batch submitted. The model is picking the next batch; it appears here.");
    }
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
  scrollToFocus();
}

function scrollToFocus() {
  // block "nearest" within the page's scroll-padding (the header's real height, app.css):
  // a tile in row 1 is never left under the sticky header.
  const tile = document.querySelector(`.tile[data-index="${view.focus}"]`);
  if (tile) tile.scrollIntoView({block: "nearest"});
}

function clickTile(event, index) {
  cancelConfirm();
  if (event.shiftKey || event.ctrlKey || event.metaKey) {
    const id = view.items[index].id;
    if (view.selected.has(id)) view.selected.delete(id); else view.selected.add(id);
  }
  view.focus = index;
  renderTiles();
  $("grid").focus();
}

const MODIFIERS = new Set(["Shift", "Control", "Alt", "Meta", "CapsLock"]);

function onKey(event) {
  const s = view.state;
  if (!s) return;
  const key = event.key;
  const target = event.target;
  if (MODIFIERS.has(key)) return;
  if (target.tagName === "BUTTON" && (key === "Enter" || key === " ")) return;  // its own click
  if (target.tagName === "INPUT") {
    // Sliders and the checkbox keep their own keys; digits and Enter still label and submit.
    if (target.type !== "range" && target.type !== "checkbox") return;
    if (key.startsWith("Arrow") || key === " " || key === "Home" || key === "End") return;
  }
  if (target.tagName === "SUMMARY" && (key === "Enter" || key === " ")) return;
  if (view.mode === "review") {
    if (reviewKey(event)) event.preventDefault();
    return;
  }
  if (key === "r" && !event.ctrlKey && !event.metaKey) {
    openReview();
    event.preventDefault();
    return;
  }
  if (!s.batch) return;
  // Any key but the one that confirms drops a change waiting for confirmation (and Esc,
  // Enter do nothing more: they were meant for the prompt).
  const digitKey = /^[0-9]$/.test(key) || key === "s" || key === "Backspace" || key === "Delete";
  if (view.confirm && !(digitKey && key === view.confirm.key)) {
    cancelConfirm();
    if (key === "Escape" || key === "Enter") { event.preventDefault(); return; }
  }
  const cols = view.enlarged ? 1 : columns();  // enlarged: up/down step like left/right
  const moves = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols};
  if (key in moves) {
    moveFocus(view.focus + moves[key], event.shiftKey && !view.enlarged);
  } else if (/^[1-9]$/.test(key) && !event.ctrlKey && !event.metaKey) {
    const k = Number(key) - 1;
    if (k < s.classes.length) assign({label: s.classes[k]}, key);
  } else if (key === "0" || key === "s") {
    assign({skip: true}, key);
  } else if (key === "Backspace" || key === "Delete") {
    assign({}, key);
  } else if (key === "u" || (key === "z" && (event.ctrlKey || event.metaKey))) {
    undo();
  } else if (key === "z") {
    if (view.enlarged) closeEnlarged(); else openEnlarged();
  } else if (key === "Escape" && view.enlarged) {
    closeEnlarged();
  } else if (key === " " && !view.enlarged) {
    const id = view.items[view.focus].id;
    if (view.selected.has(id)) view.selected.delete(id); else view.selected.add(id);
    renderTiles();
  } else if (key === "a" && !event.ctrlKey && !view.enlarged) {
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

// ---- the enlarged image ---------------------------------------------------------------
function openEnlarged() {
  if (!view.items.length || view.mode !== "label") return;
  view.enlarged = true;
  renderEnlarged();
}

function closeEnlarged() {
  view.enlarged = false;
  renderEnlarged();
  if (view.mode === "label") { $("grid").focus({preventScroll: true}); scrollToFocus(); }
}

function renderEnlarged() {
  const box = $("enlarged");
  const item = view.enlarged ? view.items[view.focus] : undefined;
  if (!item) view.enlarged = false;
  box.hidden = !view.enlarged;
  document.body.classList.toggle("has-enlarged", view.enlarged);
  if (!item) return;
  box.dataset.id = item.id;
  box.dataset.index = view.focus;
  const img = $("enlarged-img");
  const src = withToken(`/api/items/${item.id}/image`);
  if (img.getAttribute("src") !== src) {
    img.removeAttribute("style");
    img.src = src;
    img.alt = `item ${item.id}, full size`;
  }
  $("enlarged-title").textContent =
    `tile ${view.focus + 1} of ${view.items.length} · ${item.file}`;
  const answer = $("enlarged-answer");
  answer.textContent = answerLine(item);
  answer.classList.toggle("none", !isAnswered(item));
  answer.classList.toggle("confirming", isConfirming(item));
  fitEnlarged();
}

// Every image pixel as a whole number of screen pixels when it fits (no blur: pixelated);
// a picture larger than the window is scaled down to fit.
function fitEnlarged() {
  const img = $("enlarged-img");
  if (!view.enlarged || !img.complete || !img.naturalWidth) return;
  const stage = getComputedStyle(img.parentElement);  // its content box: size less padding
  const width = img.parentElement.clientWidth - parseFloat(stage.paddingLeft) -
    parseFloat(stage.paddingRight);
  const height = img.parentElement.clientHeight - parseFloat(stage.paddingTop) -
    parseFloat(stage.paddingBottom);
  let scale = Math.min(width / img.naturalWidth, height / img.naturalHeight);
  if (scale >= 1) scale = Math.floor(scale);
  img.style.width = `${Math.round(img.naturalWidth * scale)}px`;
  img.style.height = `${Math.round(img.naturalHeight * scale)}px`;
  img.dataset.scale = scale;
  const size = `${img.naturalWidth}×${img.naturalHeight} px, shown ${scale >= 1 ? scale + "×" :
    Math.round(scale * 100) + "%"}`;
  $("enlarged-title").textContent =
    `tile ${view.focus + 1} of ${view.items.length} · ${view.items[view.focus].file} · ${size}`;
}

// ---- review and correct submitted labels -----------------------------------------------
async function openReview() {
  view.mode = "review";
  view.enlarged = false;
  cancelConfirm();
  renderEnlarged();
  $("grid").hidden = true;
  $("review").hidden = false;
  $("tab-label").setAttribute("aria-pressed", "false");
  $("tab-review").setAttribute("aria-pressed", "true");
  $("review").focus({preventScroll: true});
  window.scrollTo(0, 0);
  await loadReview();
}

function closeReview() {
  view.mode = "label";
  cancelConfirm();
  $("review").hidden = true;
  $("grid").hidden = false;
  $("tab-label").setAttribute("aria-pressed", "true");
  $("tab-review").setAttribute("aria-pressed", "false");
  $("grid").focus({preventScroll: true});
  scrollToFocus();
}

async function loadReview() {
  const r = view.review;
  let data;
  try {
    data = await api(`/api/labeled?offset=${r.offset}&limit=${r.limit}`);
  } catch (e) {
    say(`Cannot load the submitted labels: ${e.message}`, true);
    return;
  }
  r.total = data.total;
  r.items = data.items.map((i) => ({...i}));
  r.focus = Math.min(r.focus, Math.max(r.items.length - 1, 0));
  renderReview();
}

function reviewPage(step) {
  const r = view.review;
  const offset = r.offset + step * r.limit;
  if (offset < 0 || offset >= r.total) return;
  r.offset = offset;
  r.focus = 0;
  cancelConfirm();
  loadReview();
}

function formatTime(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso || "") : t.toLocaleString();
}

function renderReview() {
  const r = view.review;
  const body = $("review-rows");
  if (view.mode !== "review" || !body) return;
  body.replaceChildren();
  const classes = view.state ? view.state.classes : [];
  r.items.forEach((item, k) => {
    const row = document.createElement("tr");
    row.dataset.id = item.id;
    row.dataset.index = k;
    row.classList.toggle("focused", k === r.focus);
    row.classList.toggle("confirming", isConfirming(item));
    const thumb = document.createElement("img");
    thumb.className = "thumb";
    thumb.alt = `item ${item.id}`;
    thumb.src = withToken(`/api/items/${item.id}/image`);
    const cells = [thumb, item.file, null, String(item.round ?? ""), item.annotator || "",
                   formatTime(item.time)];
    cells.forEach((content) => {
      const cell = document.createElement("td");
      if (content instanceof Node) cell.append(content);
      else if (content === null) {
        cell.className = "answer";
        cell.textContent = answerLine(item);
        if (item.note) {
          const note = document.createElement("div");
          note.className = "note " + (item.noteError ? "error" : "ok");
          note.textContent = item.note;
          cell.append(note);
        }
      } else cell.textContent = content;
      row.append(cell);
    });
    const fix = document.createElement("td");
    classes.forEach((name, c) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.cls = name;
      button.disabled = item.label === name;
      const kbd = document.createElement("kbd");
      kbd.textContent = c < 9 ? String(c + 1) : "";
      button.append(kbd, document.createTextNode(name));
      // A click on a class button in the row itself is deliberate: it corrects at once.
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        r.focus = k;
        cancelConfirm();
        correct(item, name);
      });
      fix.append(button);
    });
    row.append(fix);
    row.addEventListener("click", () => { r.focus = k; cancelConfirm(); renderReview(); });
    body.append(row);
  });
  const first = r.items.length ? r.offset + 1 : 0;
  $("review-range").textContent = r.total ?
    `${first}–${r.offset + r.items.length} of ${r.total} submitted answers, newest first` :
    "No submitted answers yet.";
  $("review-newer").disabled = r.offset === 0;
  $("review-older").disabled = r.offset + r.items.length >= r.total;
  const row = body.querySelector(`tr[data-index="${r.focus}"]`);
  if (row) row.scrollIntoView({block: "nearest"});
}

async function correct(item, label) {
  item.note = "saving…";
  item.noteError = false;
  renderReview();
  const was = answerText(item);
  try {
    const reply = await api("/api/correct", {id: item.id, label});
    item.label = reply.corrected.label;
    item.skipped = false;
    item.note = `corrected ✓ (was ${was})`;
    if (reply.counts && view.state) { view.state.counts = reply.counts; renderHeader(); }
    say("");
  } catch (e) {
    item.note = `not saved: ${e.message}`;
    item.noteError = true;
    say(`Correction not saved: ${e.message}`, true);
  }
  renderReview();
}

function reviewKey(event) {
  const key = event.key;
  const r = view.review;
  const item = r.items[r.focus];
  if (view.confirm && key !== view.confirm.key) {
    cancelConfirm();
    if (key === "Escape" || key === "Enter") return true;
  }
  if (key === "ArrowDown" || key === "j") {
    r.focus = Math.min(r.focus + 1, r.items.length - 1);
    renderReview();
  } else if (key === "ArrowUp" || key === "k") {
    r.focus = Math.max(r.focus - 1, 0);
    renderReview();
  } else if (key === "PageDown" || key === "ArrowRight") {
    reviewPage(1);
  } else if (key === "PageUp" || key === "ArrowLeft") {
    reviewPage(-1);
  } else if (/^[1-9]$/.test(key) && !event.ctrlKey && !event.metaKey && item) {
    const name = view.state.classes[Number(key) - 1];
    if (name === undefined || item.label === name) return true;
    if (confirmed(key, [item])) {
      view.confirm = null;
      correct(item, name);
    } else {
      askConfirm(key, [item], {label: name}, `${item.file} is`);
    }
  } else if (key === "Escape" || key === "l" || key === "r") {
    closeReview();
  } else {
    return false;
  }
  return true;
}

function start() {
  restoreView();
  trackHeader();
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
  $("tab-label").addEventListener("click", () => { if (view.mode !== "label") closeReview(); });
  $("tab-review").addEventListener("click", () => { if (view.mode !== "review") openReview(); });
  $("review-newer").addEventListener("click", () => reviewPage(-1));
  $("review-older").addEventListener("click", () => reviewPage(1));
  $("enlarged-close").addEventListener("click", closeEnlarged);
  $("enlarged-img").addEventListener("load", fitEnlarged);
  window.addEventListener("resize", fitEnlarged);
  $("export-csv").href = withToken("/api/export.csv");
  $("export-jsonl").href = withToken("/api/export.jsonl");
  document.addEventListener("keydown", onKey);
  refresh();
}

// The header's real height, for the page's scroll padding (app.css): it wraps on narrow windows.
function trackHeader() {
  const header = document.querySelector("header");
  const set = () => document.documentElement.style.setProperty(
    "--header-h", `${header.offsetHeight}px`);
  new ResizeObserver(set).observe(header);
  set();
}

document.addEventListener("DOMContentLoaded", start);
