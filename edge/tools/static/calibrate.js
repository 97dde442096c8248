// edge-agent calibrate page: plain JS, no external libraries, talks to edge/tools/calibrate.py.
"use strict";

const KIND_COLOURS = {
  no_parking: "#e62828", bike_bay: "#1ea0e6", bike_watch: "#c878c8", crowd: "#f0c81e", count: "#50c850",
};
const KIND_WORDS = {no_parking: "no parking", bike_bay: "bike bay", bike_watch: "bike watch area", crowd: "crowd", count: "count"};
const LINE_COLOUR = "#00e5ff";
const LANE_COLOUR = "#ffffff";
const HIT_PX = 10;
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LIVE_PERIOD_MS = 600;
const TOKEN = document.querySelector('meta[name="edge-token"]').content;

const state = {
  config: null,
  camera: null,      // camera id
  cam: null,         // its entry in config.cameras
  zones: [],         // zone objects as written in YAML (normalised polygon, exclude, lanes)
  lines: [],         // {id, a, b, classes}
  ground: [],        // {x, y, X, Y}
  sel: null,         // {type: "zone"|"line", index, ex: exclusion index or -1, lane: lane index or -1}
  mode: "select",
  drawing: [],       // vertices of the shape being drawn
  mouse: null,       // last mouse position (normalised), for the line rubber band
  drag: null,        // {kind: "vertex"|"shape"|"end"|"exvertex"|"exshape"|"lanevertex"|"laneshape"|"line", ...}
  detections: [],
  image: new Image(),
  dirty: false,
  live: false,
  liveFrames: 0,
  check: null,       // last ground-point check
};

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");

function status(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = kind || "";
}

async function api(path, body) {
  const opts = {headers: {"X-Edge-Token": TOKEN}};
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const ctype = res.headers.get("Content-Type") || "";
  const data = ctype.includes("json") ? await res.json() : await res.blob();
  return {ok: res.ok, data, res};
}

// ---------- geometry ----------
function toNorm(ev) {
  const r = canvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) / r.width;
  const y = (ev.clientY - r.top) / r.height;
  return [Math.min(Math.max(x, 0), 1), Math.min(Math.max(y, 0), 1)];
}
function toPx(p) { return [p[0] * canvas.width, p[1] * canvas.height]; }
function pxScale() { return canvas.width / canvas.getBoundingClientRect().width; }
function dist(a, b) {
  const [ax, ay] = toPx(a), [bx, by] = toPx(b);
  return Math.hypot(ax - bx, ay - by) / pxScale();   // in CSS pixels
}
function segDist(p, a, b) {
  const [px, py] = toPx(p), [ax, ay] = toPx(a), [bx, by] = toPx(b);
  const dx = bx - ax, dy = by - ay, L = dx * dx + dy * dy || 1;
  const u = Math.min(Math.max(((px - ax) * dx + (py - ay) * dy) / L, 0), 1);
  return Math.hypot(px - ax - u * dx, py - ay - u * dy) / pxScale();
}
function inside(p, poly) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}
const r4 = (v) => Math.round(v * 10000) / 10000;
const clamp01 = (v) => Math.min(Math.max(v, 0), 1);

// ---------- drawing ----------
function label(text, x, y, bg, fg, lw) {
  // A text box that always stays inside the picture (flipped left/down at the edges).
  const pad = lw;
  const tw = ctx.measureText(text).width + 2 * pad;
  const th = lw * 9;
  let bx = x, by = y - th;
  if (bx + tw > canvas.width) bx = Math.max(0, canvas.width - tw);
  if (bx < 0) bx = 0;
  if (by < 0) by = Math.min(y + lw * 2, canvas.height - th);
  if (by + th > canvas.height) by = canvas.height - th;
  ctx.fillStyle = bg;
  ctx.fillRect(bx, by, tw, th);
  ctx.fillStyle = fg;
  ctx.fillText(text, bx + pad, by + th - lw * 2);
  return [bx, by, tw, th];
}

function polyPath(pts) {
  ctx.beginPath();
  pts.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
}

function handles(pts, lw) {
  ctx.fillStyle = "#fff";
  pts.forEach(([x, y]) => ctx.fillRect(x - lw * 2, y - lw * 2, lw * 4, lw * 4));
}

function arrow(ax, ay, bx, by, lw) {
  const ang = Math.atan2(by - ay, bx - ax), L = lw * 6;
  ctx.beginPath();
  ctx.moveTo(ax, ay); ctx.lineTo(bx, by);
  ctx.moveTo(bx, by); ctx.lineTo(bx - L * Math.cos(ang - 0.4), by - L * Math.sin(ang - 0.4));
  ctx.moveTo(bx, by); ctx.lineTo(bx - L * Math.cos(ang + 0.4), by - L * Math.sin(ang + 0.4));
  ctx.stroke();
}

function render() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (state.image.complete && state.image.naturalWidth) ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  const lw = Math.max(2, canvas.width / 400);
  ctx.font = `${Math.round(lw * 7)}px sans-serif`;
  const live = state.live;  // the live frame already shows zones, lines, tracks and counts
  state.zones.forEach((z, i) => {
    const col = KIND_COLOURS[z.kind] || "#aaa";
    const selected = state.sel && state.sel.type === "zone" && state.sel.index === i;
    const pts = (z.polygon || []).map(toPx);
    if (pts.length < 2) return;
    if (!live || selected) {
      polyPath(pts);
      if (!live) {
        ctx.globalAlpha = selected ? 0.35 : 0.2;
        ctx.fillStyle = col;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      ctx.lineWidth = selected ? lw * 1.8 : lw;
      ctx.strokeStyle = col;
      ctx.stroke();
    }
    (z.exclude || []).forEach((ex, k) => {
      const ep = ex.map(toPx);
      if (ep.length < 3) return;
      polyPath(ep);
      if (!live) { ctx.globalAlpha = 0.55; ctx.fillStyle = "#000"; ctx.fill(); ctx.globalAlpha = 1; }
      ctx.setLineDash([lw * 3, lw * 2]);
      ctx.lineWidth = selected && state.sel.ex === k ? lw * 1.8 : lw;
      ctx.strokeStyle = col;
      ctx.stroke();
      ctx.setLineDash([]);
      if (!live) {
        const c = ep.reduce((a, b) => [a[0] + b[0] / ep.length, a[1] + b[1] / ep.length], [0, 0]);
        label("not counted", c[0] - lw * 14, c[1], "rgba(0,0,0,0.7)", "#fff", lw);
      }
      if (selected) handles(ep, lw * 0.8);
    });
    (z.lanes || []).forEach((lane, k) => {
      // a lane of moving traffic through a no-parking zone: a vehicle queuing there is not parked
      const lp = lane.map(toPx);
      if (lp.length < 3) return;
      const laneSel = selected && state.sel.lane === k;
      polyPath(lp);
      if (!live) { ctx.globalAlpha = 0.18; ctx.fillStyle = LANE_COLOUR; ctx.fill(); ctx.globalAlpha = 1; }
      ctx.setLineDash([lw * 5, lw * 2, lw, lw * 2]);
      ctx.lineWidth = laneSel ? lw * 1.8 : lw;
      ctx.strokeStyle = LANE_COLOUR;
      ctx.stroke();
      ctx.setLineDash([]);
      if (!live) {
        const c = lp.reduce((a, b) => [a[0] + b[0] / lp.length, a[1] + b[1] / lp.length], [0, 0]);
        label(`traffic lane ${k + 1}`, c[0] - lw * 18, c[1], "rgba(0,0,0,0.7)", LANE_COLOUR, lw);
      }
      if (selected) handles(lp, lw * 0.8);
    });
    if (selected) handles(pts, lw);
    if (!live) {
      const top = pts.reduce((a, b) => (b[1] < a[1] ? b : a));
      const extra = z.kind === "bike_bay" && z.capacity !== undefined ? ` · ${z.capacity} bikes` : "";
      label(`${z.id} (${KIND_WORDS[z.kind] || z.kind})${extra}`, top[0], top[1] - lw, col, "#fff", lw);
    }
  });
  state.lines.forEach((ln, i) => {
    const selected = state.sel && state.sel.type === "line" && state.sel.index === i;
    const [ax, ay] = toPx(ln.a), [bx, by] = toPx(ln.b);
    if (!live || selected) {
      ctx.strokeStyle = LINE_COLOUR;
      ctx.lineWidth = selected ? lw * 1.8 : lw * 1.2;
      arrow(ax, ay, bx, by, lw);
      // "in" is a crossing to the right of a -> b (as seen on the picture)
      const mx = (ax + bx) / 2, my = (ay + by) / 2, L = Math.hypot(bx - ax, by - ay) || 1;
      const nx = -(by - ay) / L, ny = (bx - ax) / L;
      ctx.lineWidth = lw;
      arrow(mx - nx * lw * 6, my - ny * lw * 6, mx + nx * lw * 10, my + ny * lw * 10, lw * 0.8);
      label("in", mx + nx * lw * 11, my + ny * lw * 11 + lw * 4, "rgba(0,0,0,0.6)", LINE_COLOUR, lw);
      label(ln.id, ax, ay - lw, "#00838f", "#fff", lw);
    }
    if (selected) handles([[ax, ay], [bx, by]], lw);
  });
  if (state.drawing.length) {
    ctx.strokeStyle = "#fff";
    ctx.setLineDash([lw * 3, lw * 2]);
    ctx.lineWidth = lw;
    ctx.beginPath();
    const pts = state.drawing.map(toPx);
    if (state.mode === "line" && state.mouse) pts.push(toPx(state.mouse));
    pts.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.setLineDash([]);
    state.drawing.map(toPx).forEach(([x, y]) => { ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc(x, y, lw * 2, 0, 7); ctx.fill(); });
  }
  const suspect = state.check ? state.check.suspect : null;
  const showGround = !live || state.mode === "ground";
  if (showGround) state.ground.forEach((g, i) => {
    const [x, y] = toPx([g.x, g.y]);
    const col = i === suspect ? "#ff4040" : "#0ff";
    ctx.strokeStyle = col; ctx.lineWidth = lw;
    ctx.beginPath(); ctx.moveTo(x - lw * 5, y); ctx.lineTo(x + lw * 5, y); ctx.moveTo(x, y - lw * 5); ctx.lineTo(x, y + lw * 5); ctx.stroke();
    label(`G${i + 1} (${g.X === "" ? "?" : g.X}, ${g.Y === "" ? "?" : g.Y}) m`, x + lw * 3, y - lw * 3, "rgba(0,0,0,0.65)", col, lw);
  });
  state.detections.forEach((d) => {
    const [x1, y1] = toPx([d.box[0], d.box[1]]), [x2, y2] = toPx([d.box[2], d.box[3]]);
    ctx.strokeStyle = "#7f7"; ctx.lineWidth = lw; ctx.setLineDash([lw * 2, lw]);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
    label(`${d.class} ${d.confidence.toFixed(2)}`, x1, y1 - lw, "rgba(0,0,0,0.6)", "#7f7", lw);
  });
}

// ---------- side panel ----------
function renderLists(keepForm) {
  const zl = $("zone-list");
  zl.innerHTML = "";
  state.zones.forEach((z, i) => {
    const li = document.createElement("li");
    const ex = (z.exclude || []).length, ln = (z.lanes || []).length;
    li.textContent = `${z.id}  (${KIND_WORDS[z.kind] || z.kind}, ${(z.polygon || []).length} corners` +
      `${ex ? `, ${ex} exclusion${ex > 1 ? "s" : ""}` : ""}${ln ? `, ${ln} lane${ln > 1 ? "s" : ""}` : ""})`;
    li.style.borderLeftColor = KIND_COLOURS[z.kind] || "#888";
    li.className = state.sel && state.sel.type === "zone" && state.sel.index === i ? "selected" : "";
    li.onclick = () => select({type: "zone", index: i, ex: -1, lane: -1});
    zl.appendChild(li);
  });
  if (!state.zones.length) zl.innerHTML = '<li class="hint">none yet: Draw zone</li>';
  const ll = $("line-list");
  ll.innerHTML = "";
  state.lines.forEach((ln, i) => {
    const li = document.createElement("li");
    li.textContent = `${ln.id}  (${(ln.classes || ["person"]).join(", ")})`;
    li.style.borderLeftColor = LINE_COLOUR;
    li.className = state.sel && state.sel.type === "line" && state.sel.index === i ? "selected" : "";
    li.onclick = () => select({type: "line", index: i, ex: -1, lane: -1});
    ll.appendChild(li);
  });
  if (!state.lines.length) ll.innerHTML = '<li class="hint">none yet: Draw line</li>';
  $("delete").disabled = !state.sel;
  if (!keepForm) renderForm();
}

function schemaProp(schema, name) {
  const defs = schema.$defs || {};
  let prop = (schema.properties || {})[name] || {};
  const raw = prop;
  if (prop.anyOf) {
    const nonNull = prop.anyOf.filter((p) => p.type !== "null");
    prop = Object.assign({}, nonNull.length === 1 ? nonNull[0] : {}, {description: raw.description, default: raw.default});
  }
  if (prop.$ref) prop = Object.assign({}, defs[prop.$ref.split("/").pop()] || {}, {description: raw.description});
  return prop;
}

function field(labelText, input, title, unit) {
  const label = document.createElement("label");
  label.className = "field";
  label.title = title || "";
  const span = document.createElement("span");
  span.textContent = labelText;
  label.appendChild(span);
  label.appendChild(input);
  if (unit) { const u = document.createElement("span"); u.className = "unit"; u.textContent = unit; label.appendChild(u); }
  return label;
}

function changed() { state.dirty = true; renderLists(true); render(); }

const FIELD_SPECS = {
  zone_type: {label: "type of restriction", unit: ""},
  limit_s: {label: "allowed stay", unit: "seconds (empty: the site default)"},
  capacity: {label: "capacity", unit: "bikes"},
  operator: {label: "operator", unit: ""},
  area_m2: {label: "ground area", unit: "m² (empty: from the ground points)"},
  los_table: {label: "level-of-service table", unit: ""},
};

function renderForm() {
  const form = $("form");
  form.innerHTML = "";
  if (!state.sel) { form.innerHTML = '<p class="hint">Select a zone or a line (on the picture or in the lists) to edit it.</p>'; return; }
  if (state.sel.type === "line") return renderLineForm(form, state.lines[state.sel.index]);
  const z = state.zones[state.sel.index];
  const schema = state.config.zone_schema;
  const id = document.createElement("input");
  id.id = "zone-field-id"; id.value = z.id;
  id.onchange = () => { z.id = id.value.trim(); changed(); };
  form.appendChild(field("name (id)", id, "Unique within the camera; appears in events"));
  const kind = document.createElement("select");
  kind.id = "zone-field-kind";
  schemaProp(schema, "kind").enum.forEach((k) => kind.appendChild(new Option(KIND_WORDS[k] || k, k)));
  kind.value = z.kind;
  kind.onchange = () => {
    z.kind = kind.value;
    // keep only what the new kind uses
    const keep = new Set(["id", "kind", "polygon", "exclude", ...state.config.kind_fields[z.kind], ...(state.config.kind_shapes[z.kind] || [])]);
    Object.keys(z).forEach((k) => { if (!keep.has(k)) delete z[k]; });
    changed(); renderForm();
  };
  form.appendChild(field("kind", kind, schemaProp(schema, "kind").description));
  for (const name of state.config.kind_fields[z.kind] || []) {
    if (name === "classes") form.appendChild(classesEditor(z, state.config.default_classes[z.kind] || []));
    else if (name === "schedule") form.appendChild(scheduleEditor(z));
    else form.appendChild(simpleField(z, name, schemaProp(schema, name)));
  }
  const ex = (z.exclude || []).length;
  const p = document.createElement("p");
  p.className = "hint";
  p.textContent = ex ? `${ex} exclusion area(s): objects standing there are not counted. Select one on the picture and press Delete to remove it.`
    : "No exclusion: use Draw exclusion to leave out part of this zone (a bench, a kiosk).";
  form.appendChild(p);
  if ((state.config.kind_shapes[z.kind] || []).includes("lanes")) {
    const ln = (z.lanes || []).length;
    const q = document.createElement("p");
    q.className = "hint";
    q.id = "lanes-hint";
    q.textContent = ln ? `${ln} traffic lane(s): a vehicle standing in a lane with a stopped neighbour is queuing, not parked. Select one on the picture and press Delete to remove it.`
      : "No traffic lane: use Draw lane for the lanes of moving traffic through this zone, so a queue at a light is not taken for parked cars.";
    form.appendChild(q);
  }
}

function simpleField(z, name, prop) {
  const spec = FIELD_SPECS[name] || {label: name, unit: ""};
  let input;
  if (prop.enum) {
    input = document.createElement("select");
    input.appendChild(new Option(`(default${prop.default ? ": " + prop.default : ""})`, ""));
    prop.enum.forEach((v) => input.appendChild(new Option(String(v).replace("_", " "), String(v))));
    input.value = z[name] === undefined ? "" : String(z[name]);
  } else {
    input = document.createElement("input");
    const numeric = prop.type === "integer" || prop.type === "number";
    input.type = numeric ? "number" : "text";
    if (prop.type === "integer") input.step = "1";
    if (numeric) input.min = "0";
    input.value = z[name] === undefined || z[name] === null ? "" : String(z[name]);
  }
  input.id = "zone-field-" + name;
  input.onchange = () => {
    let v = input.value === "" ? undefined : input.value;
    if (v !== undefined && (prop.type === "integer" || prop.type === "number")) v = prop.type === "integer" ? parseInt(v, 10) : parseFloat(v);
    if (v === undefined || (typeof v === "number" && Number.isNaN(v))) delete z[name]; else z[name] = v;
    changed();
  };
  return field(spec.label, input, prop.description, spec.unit);
}

function classesEditor(obj, defaults) {
  const fs = document.createElement("fieldset");
  fs.className = "classes";
  fs.id = "classes";
  const lg = document.createElement("legend");
  lg.textContent = `classes watched (none ticked: ${defaults.join(", ") || "the default"})`;
  fs.appendChild(lg);
  const chosen = new Set(obj.classes || []);
  state.config.class_names.forEach((c) => {
    const l = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.value = c; cb.checked = chosen.has(c);
    cb.onchange = () => {
      const picked = [...fs.querySelectorAll("input:checked")].map((x) => x.value);
      if (picked.length) obj.classes = picked; else delete obj.classes;
      changed();
    };
    l.appendChild(cb); l.appendChild(document.createTextNode(" " + c));
    fs.appendChild(l);
  });
  return fs;
}

function scheduleEditor(z) {
  const fs = document.createElement("fieldset");
  fs.id = "schedule";
  const lg = document.createElement("legend");
  lg.textContent = "in force";
  fs.appendChild(lg);
  const sched = z.schedule;
  const write = () => {
    const windows = [...fs.querySelectorAll(".window")].map((row) => ({
      days: DAYS.filter((d) => row.querySelector(`input[data-day="${d}"]`).checked),
      start: row.querySelector(".start").value,
      end: row.querySelector(".end").value,
    }));
    const dates = [...fs.querySelectorAll(".except")].map((i) => i.value).filter((v) => v);
    if (!windows.length) delete z.schedule;
    else z.schedule = dates.length ? {windows, except_dates: dates} : {windows};
    changed();
  };
  const p = document.createElement("p");
  p.className = "hint";
  p.textContent = sched ? "during these times (site's local time; an end before the start runs past midnight):" : "always (add a time window to limit it)";
  fs.appendChild(p);
  (sched ? sched.windows : []).forEach((w) => fs.appendChild(windowRow(w, write)));
  const add = document.createElement("button");
  add.className = "small"; add.id = "add-window"; add.textContent = "+ time window";
  add.onclick = () => {
    const w = {days: ["mon", "tue", "wed", "thu", "fri"], start: "07:00", end: "19:00"};
    z.schedule = z.schedule || {windows: []};
    z.schedule.windows.push(w);
    changed(); renderForm();
  };
  fs.appendChild(add);
  if (sched) {
    const q = document.createElement("p");
    q.className = "hint";
    q.textContent = "not in force on these dates (holidays):";
    fs.appendChild(q);
    (sched.except_dates || []).forEach((d) => {
      const row = document.createElement("div");
      const inp = document.createElement("input");
      inp.type = "date"; inp.className = "except"; inp.value = d;
      inp.onchange = write;
      const del = document.createElement("button");
      del.className = "small"; del.textContent = "✕"; del.title = "remove this date";
      del.onclick = () => { row.remove(); write(); renderForm(); };
      row.appendChild(inp); row.appendChild(del);
      fs.appendChild(row);
    });
    const addd = document.createElement("button");
    addd.className = "small"; addd.id = "add-date"; addd.textContent = "+ date";
    addd.onclick = () => {
      z.schedule.except_dates = [...(z.schedule.except_dates || []), new Date().toISOString().slice(0, 10)];
      changed(); renderForm();
    };
    fs.appendChild(addd);
  }
  return fs;
}

function windowRow(w, write) {
  const row = document.createElement("div");
  row.className = "window";
  DAYS.forEach((d) => {
    const l = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.dataset.day = d; cb.checked = (w.days || DAYS).includes(d);
    cb.onchange = write;
    l.appendChild(cb); l.appendChild(document.createTextNode(d[0].toUpperCase() + d.slice(1, 2)));
    row.appendChild(l);
  });
  const start = document.createElement("input");
  start.type = "time"; start.className = "start"; start.value = w.start; start.onchange = write;
  const end = document.createElement("input");
  end.type = "time"; end.className = "end"; end.value = w.end === "24:00" ? "23:59" : w.end; end.onchange = write;
  const del = document.createElement("button");
  del.className = "small"; del.textContent = "✕"; del.title = "remove this time window";
  del.onclick = () => { row.remove(); write(); renderForm(); };
  row.appendChild(document.createTextNode(" from ")); row.appendChild(start);
  row.appendChild(document.createTextNode(" to ")); row.appendChild(end);
  row.appendChild(del);
  return row;
}

function renderLineForm(form, ln) {
  const id = document.createElement("input");
  id.id = "line-field-id"; id.value = ln.id;
  id.onchange = () => { ln.id = id.value.trim(); changed(); };
  form.appendChild(field("name (id)", id, "Unique within the camera; appears in crossing events"));
  form.appendChild(classesEditor(ln, ["person"]));
  const swap = document.createElement("button");
  swap.id = "swap-line"; swap.textContent = "Swap in / out";
  swap.onclick = () => { [ln.a, ln.b] = [ln.b, ln.a]; changed(); };
  form.appendChild(swap);
  const p = document.createElement("p");
  p.className = "hint";
  p.textContent = "A crossing towards the side the small \"in\" arrow points to counts as in; the other way as out.";
  form.appendChild(p);
}

function renderGround() {
  const tbody = $("ground-table").querySelector("tbody");
  tbody.innerHTML = "";
  const chk = state.check;
  state.ground.forEach((g, i) => {
    const tr = document.createElement("tr");
    const off = chk && chk.off_by_m && chk.off_by_m[i] !== undefined && chk.off_by_m[i] !== null ? `${chk.off_by_m[i].toFixed(2)} m` : "";
    tr.className = chk && chk.suspect === i ? "suspect" : "";
    tr.innerHTML = `<td>G${i + 1}</td><td>${g.x.toFixed(3)}, ${g.y.toFixed(3)}</td>` +
      `<td><input class="gx" type="number" step="0.01"></td><td><input class="gy" type="number" step="0.01"></td>` +
      `<td class="off">${off}</td><td><button class="gdel small" title="remove">✕</button></td>`;
    const gx = tr.querySelector(".gx"), gy = tr.querySelector(".gy");
    gx.value = g.X; gy.value = g.Y;
    gx.onchange = () => { g.X = gx.value; groundChanged(); };
    gy.onchange = () => { g.Y = gy.value; groundChanged(); };
    tr.querySelector(".gdel").onclick = () => { state.ground.splice(i, 1); groundChanged(); renderGround(); };
    tbody.appendChild(tr);
  });
  const need = state.config ? state.config.min_check_points : 5;
  $("check-ground").disabled = state.ground.length < need;
  $("check-ground").title = state.ground.length < need ? `needs at least ${need} points (any 4 fit exactly)` : "";
}

function groundChanged() {
  state.dirty = true;
  state.check = null;
  $("ground-result").textContent = "";
  render();
}

function select(sel) {
  state.sel = sel;
  renderLists();
  render();
}

const HINTS = {
  select: "Select / move: drag a corner, a line end or a whole shape. Delete removes what is selected.",
  zone: "Draw zone: click each corner; click the first corner, double-click, press Enter or Finish shape to close it (3 corners or more).",
  exclude: "Draw exclusion: inside the selected zone, click the corners of an area to leave out; close it like a zone.",
  lane: "Draw lane: inside the selected no-parking zone, click the corners of a lane of moving traffic; close it like a zone. A vehicle queuing there is not parked.",
  line: "Draw line: click where it starts, then where it ends. Crossing it towards the right of that arrow counts as in.",
  ground: "Ground points: click a point on the flat ground, then type its x and y in metres in the table on the right.",
};

const SHAPE_MODES = ["zone", "exclude", "lane"];  // modes that draw a polygon, closed like a zone

function setMode(mode) {
  if (mode === "exclude" && !(state.sel && state.sel.type === "zone")) {
    status("select the zone the exclusion belongs to first", "error");
    return;
  }
  if (mode === "lane") {
    const z = state.sel && state.sel.type === "zone" ? state.zones[state.sel.index] : null;
    if (!z || !(state.config.kind_shapes[z.kind] || []).includes("lanes")) {
      status("select the no-parking zone the traffic lane runs through first", "error");
      return;
    }
  }
  state.drawing = [];
  state.mode = mode;
  document.querySelectorAll("button.mode").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  $("finish").disabled = !SHAPE_MODES.includes(mode);
  $("hint").textContent = HINTS[mode];
  render();
}

function uniqueId(base, items) {
  const ids = new Set(items.map((z) => z.id));
  let n = items.length + 1;
  while (ids.has(`${base}-${n}`)) n += 1;
  return `${base}-${n}`;
}

function finishShape() {
  if (state.drawing.length < 3) { status("a shape needs at least 3 corners", "error"); return; }
  const poly = state.drawing.map(([x, y]) => [r4(x), r4(y)]);
  if (state.mode === "exclude") {
    const z = state.zones[state.sel.index];
    z.exclude = [...(z.exclude || []), poly];
    state.sel = {type: "zone", index: state.sel.index, ex: z.exclude.length - 1, lane: -1};
    status(`exclusion added to ${z.id}; Save to keep it`, "ok");
  } else if (state.mode === "lane") {
    const z = state.zones[state.sel.index];
    z.lanes = [...(z.lanes || []), poly];
    state.sel = {type: "zone", index: state.sel.index, ex: -1, lane: z.lanes.length - 1};
    status(`traffic lane added to ${z.id}; Save to keep it`, "ok");
  } else {
    const kinds = state.config.zone_schema.properties.kind.enum;
    state.zones.push({id: uniqueId("zone", state.zones), kind: kinds.includes("count") ? "count" : kinds[0], polygon: poly});
    state.sel = {type: "zone", index: state.zones.length - 1, ex: -1, lane: -1};
    status("zone added; name it and choose its kind on the right, then Save", "ok");
  }
  state.drawing = [];
  state.dirty = true;
  setMode("select");
  renderLists();
}

function finishLine(b) {
  const a = state.drawing[0];
  if (dist(a, b) < HIT_PX) { status("a line needs two different ends", "error"); return; }
  state.lines.push({id: uniqueId("line", state.lines), a: [r4(a[0]), r4(a[1])], b: [r4(b[0]), r4(b[1])], classes: ["person"]});
  state.sel = {type: "line", index: state.lines.length - 1, ex: -1, lane: -1};
  state.drawing = [];
  state.dirty = true;
  setMode("select");
  renderLists();
  status("line added; name it and pick what it counts on the right, then Save", "ok");
}

function deleteSelected() {
  const sel = state.sel;
  if (!sel) return;
  let what;
  if (sel.type === "line") what = `line ${state.lines.splice(sel.index, 1)[0].id}`;
  else if (sel.lane >= 0) {
    const z = state.zones[sel.index];
    z.lanes.splice(sel.lane, 1);
    if (!z.lanes.length) delete z.lanes;
    what = `a traffic lane of ${z.id}`;
  } else if (sel.ex >= 0) {
    const z = state.zones[sel.index];
    z.exclude.splice(sel.ex, 1);
    if (!z.exclude.length) delete z.exclude;
    what = `an exclusion of ${z.id}`;
  } else what = `zone ${state.zones.splice(sel.index, 1)[0].id}`;
  state.sel = null;
  state.dirty = true;
  renderLists();
  render();
  status(`deleted ${what} (not saved yet)`);
}

// ---------- mouse ----------
function hitTest(p) {
  const zoneOrder = [...state.zones.keys()];
  if (state.sel && state.sel.type === "zone") zoneOrder.unshift(state.sel.index);
  for (const [i, ln] of state.lines.entries()) {
    if (dist(p, ln.a) <= HIT_PX) return {kind: "end", index: i, end: "a"};
    if (dist(p, ln.b) <= HIT_PX) return {kind: "end", index: i, end: "b"};
  }
  for (const i of zoneOrder) {
    const z = state.zones[i];
    for (const [k, ex] of (z.exclude || []).entries()) {
      const v = ex.findIndex((q) => dist(p, q) <= HIT_PX);
      if (v >= 0) return {kind: "exvertex", index: i, ex: k, vertex: v};
    }
    for (const [k, lane] of (z.lanes || []).entries()) {
      const v = lane.findIndex((q) => dist(p, q) <= HIT_PX);
      if (v >= 0) return {kind: "lanevertex", index: i, lane: k, vertex: v};
    }
    const v = (z.polygon || []).findIndex((q) => dist(p, q) <= HIT_PX);
    if (v >= 0) return {kind: "vertex", index: i, vertex: v};
  }
  for (const [i, ln] of state.lines.entries()) if (segDist(p, ln.a, ln.b) <= HIT_PX) return {kind: "line", index: i};
  for (let i = state.zones.length - 1; i >= 0; i--) {
    for (const [k, ex] of (state.zones[i].exclude || []).entries()) if (inside(p, ex)) return {kind: "exshape", index: i, ex: k};
  }
  for (let i = state.zones.length - 1; i >= 0; i--) {
    for (const [k, lane] of (state.zones[i].lanes || []).entries()) if (inside(p, lane)) return {kind: "laneshape", index: i, lane: k};
  }
  for (let i = state.zones.length - 1; i >= 0; i--) if (inside(p, state.zones[i].polygon || [])) return {kind: "shape", index: i};
  return null;
}

function movePoly(poly, dx, dy) {
  const minX = Math.min(...poly.map((q) => q[0])), maxX = Math.max(...poly.map((q) => q[0]));
  const minY = Math.min(...poly.map((q) => q[1])), maxY = Math.max(...poly.map((q) => q[1]));
  const cx = Math.min(Math.max(dx, -minX), 1 - maxX), cy = Math.min(Math.max(dy, -minY), 1 - maxY);
  for (const q of poly) { q[0] = r4(q[0] + cx); q[1] = r4(q[1] + cy); }
  return [cx, cy];
}

canvas.addEventListener("mousedown", (ev) => {
  const p = toNorm(ev);
  if (SHAPE_MODES.includes(state.mode)) {
    if (state.drawing.length >= 3 && dist(p, state.drawing[0]) <= HIT_PX) { finishShape(); return; }
    state.drawing.push(p);
    render();
  } else if (state.mode === "line") {
    if (!state.drawing.length) { state.drawing.push(p); render(); } else finishLine(p);
  } else if (state.mode === "ground") {
    state.ground.push({x: r4(p[0]), y: r4(p[1]), X: "", Y: ""});
    groundChanged();
    renderGround();
  } else {
    const hit = hitTest(p);
    if (!hit) { select(null); return; }
    state.drag = Object.assign(hit, {last: p});
    const isLine = hit.kind === "end" || hit.kind === "line";
    select({type: isLine ? "line" : "zone", index: hit.index, ex: hit.ex === undefined ? -1 : hit.ex,
      lane: hit.lane === undefined ? -1 : hit.lane});
  }
});
canvas.addEventListener("mousemove", (ev) => {
  const p = toNorm(ev);
  state.mouse = p;
  if (state.mode === "line" && state.drawing.length) { render(); return; }
  const d = state.drag;
  if (!d) return;
  const dx = p[0] - d.last[0], dy = p[1] - d.last[1];
  if (d.kind === "vertex") state.zones[d.index].polygon[d.vertex] = [r4(p[0]), r4(p[1])];
  else if (d.kind === "exvertex") state.zones[d.index].exclude[d.ex][d.vertex] = [r4(p[0]), r4(p[1])];
  else if (d.kind === "lanevertex") state.zones[d.index].lanes[d.lane][d.vertex] = [r4(p[0]), r4(p[1])];
  else if (d.kind === "shape") {
    const z = state.zones[d.index];
    const [cx, cy] = movePoly(z.polygon, dx, dy);
    [...(z.exclude || []), ...(z.lanes || [])].forEach((ex) => ex.forEach((q) => { q[0] = r4(clamp01(q[0] + cx)); q[1] = r4(clamp01(q[1] + cy)); }));
  } else if (d.kind === "exshape") movePoly(state.zones[d.index].exclude[d.ex], dx, dy);
  else if (d.kind === "laneshape") movePoly(state.zones[d.index].lanes[d.lane], dx, dy);
  else if (d.kind === "end") state.lines[d.index][d.end] = [r4(p[0]), r4(p[1])];
  else if (d.kind === "line") {
    const ln = state.lines[d.index];
    const pts = [ln.a.slice(), ln.b.slice()];
    movePoly(pts, dx, dy);
    ln.a = pts[0]; ln.b = pts[1];
  }
  d.last = p;
  state.dirty = true;
  render();
});
window.addEventListener("mouseup", () => { if (state.drag) { state.drag = null; renderLists(true); } });
canvas.addEventListener("dblclick", () => { if (SHAPE_MODES.includes(state.mode) && state.drawing.length >= 3) finishShape(); });
window.addEventListener("keydown", (ev) => {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(ev.target.tagName)) return;
  if (ev.key === "Delete" || ev.key === "Backspace") deleteSelected();
  if (ev.key === "Enter" && SHAPE_MODES.includes(state.mode)) finishShape();
  if (ev.key === "Escape") setMode("select");
});

// ---------- server calls ----------
function loadCamera(id) {
  const cam = state.config.cameras.find((c) => c.id === id);
  stopLive();
  state.camera = id;
  state.cam = cam;
  state.zones = JSON.parse(JSON.stringify(cam.zones || []));
  state.lines = JSON.parse(JSON.stringify(cam.lines || []));
  const cal = cam.calibration;
  state.ground = cal ? cal.image_points.map((p, i) => ({
    x: p[0], y: p[1], X: String(cal.ground_points_m[i][0]), Y: String(cal.ground_points_m[i][1]),
  })) : [];
  state.sel = null;
  state.detections = [];
  state.check = null;
  const isFile = cam.source_kind === "file" && cam.duration_s;
  $("file-pos").hidden = !isFile;
  if (isFile) {
    $("position").max = String(Math.max(cam.duration_s - 0.1, 0));
    $("position").value = String(cam.position_s || 0);
    $("position-label").textContent = `${(cam.position_s || 0).toFixed(1)} s of ${cam.duration_s.toFixed(1)} s`;
  }
  renderLists();
  renderGround();
  refreshSnapshot();
}

function showPosition(res) {
  const pos = res.headers.get("X-Position");
  if (pos === null || !state.cam || !state.cam.duration_s) return;
  state.cam.position_s = parseFloat(pos);
  $("position").value = pos;
  $("position-label").textContent = `${parseFloat(pos).toFixed(1)} s of ${state.cam.duration_s.toFixed(1)} s`;
}

function showImage(blob, onload) {
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.onload = () => {
    state.image = img;
    if (canvas.width !== img.naturalWidth || canvas.height !== img.naturalHeight) {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
    }
    render();
    URL.revokeObjectURL(url);
    if (onload) onload();
  };
  img.onerror = () => status("could not decode the picture", "error");
  img.src = url;
}

async function refreshSnapshot(atS) {
  status(`grabbing a picture from ${state.camera}…`);
  state.detections = [];
  const at = atS === undefined ? "" : `&at=${atS}`;
  let r;
  try {
    r = await api(`/api/snapshot?camera=${encodeURIComponent(state.camera)}${at}&t=${Date.now()}`);
  } catch (e) { status(`could not reach the server: ${e.message}`, "error"); return; }
  if (!r.ok) { status(`picture failed: ${r.data.error || r.res.status}`, "error"); return; }
  const problem = r.res.headers.get("X-Snapshot-Error");
  showPosition(r.res);
  showImage(r.data, () => {
    if (problem) status(`no live picture (zones can still be edited): ${problem}`, "error");
    else status(`picture ${canvas.width}×${canvas.height} from ${state.camera}` + (state.cam.duration_s ? ` at ${state.cam.position_s.toFixed(1)} s of the file` : ""), "ok");
    document.body.dataset.snapshot = problem ? "placeholder" : "loaded";
  });
}

async function previewDetections() {
  status("running the detector on this picture…");
  const {ok, data} = await api(`/api/detect?camera=${encodeURIComponent(state.camera)}`);
  if (!ok) { status(data.error || "detection failed", "error"); return; }
  state.detections = data.detections;
  render();
  const where = data.position_s === null || data.position_s === undefined ? "" : ` at ${data.position_s.toFixed(1)} s of the file`;
  status(`${data.detections.length} detection(s)${where}`, "ok");
  document.body.dataset.detections = String(data.detections.length);
}

async function liveStep() {
  if (!state.live) return;
  const started = Date.now();
  let r;
  try {
    r = await api("/api/live", {camera: state.camera, zones: state.zones, lines: state.lines});
  } catch (e) { status(`live view stopped: ${e.message}`, "error"); stopLive(); return; }
  if (!state.live) return;
  if (!r.ok) { status(r.data.error || "live view failed", "error"); stopLive(); return; }
  showPosition(r.res);
  showImage(r.data, () => {
    state.liveFrames += 1;
    document.body.dataset.liveFrames = String(state.liveFrames);
    status(`live view: frame ${state.liveFrames}` + (state.cam.duration_s ? `, file at ${state.cam.position_s.toFixed(1)} s` : ""), "ok");
  });
  state.liveTimer = setTimeout(liveStep, Math.max(LIVE_PERIOD_MS - (Date.now() - started), 50));
}

function startLive() {
  state.live = true;
  state.detections = [];
  $("live").classList.add("active");
  $("live").textContent = "Stop live view";
  liveStep();
}

function stopLive() {
  state.live = false;
  clearTimeout(state.liveTimer);
  $("live").classList.remove("active");
  $("live").textContent = "Live view";
  render();
}

function calibrationBody() {
  if (!state.ground.length) return {value: null};
  if (state.ground.length < 4) return {error: `ground points: ${state.ground.length} given, at least 4 needed (5 or more to check them), or remove them all`};
  const missing = state.ground.findIndex((g) => g.X === "" || g.Y === "" || Number.isNaN(parseFloat(g.X)) || Number.isNaN(parseFloat(g.Y)));
  if (missing >= 0) return {error: `ground point G${missing + 1}: enter x and y in metres`};
  return {value: {
    image_points: state.ground.map((g) => [g.x, g.y]),
    ground_points_m: state.ground.map((g) => [parseFloat(g.X), parseFloat(g.Y)]),
  }};
}

async function checkGround() {
  const cal = calibrationBody();
  const out = $("ground-result");
  if (cal.error || !cal.value) { out.textContent = cal.error || "no ground points"; out.className = "bad"; return; }
  const {ok, data} = await api("/api/homography", Object.assign({camera: state.camera}, cal.value));
  state.check = ok ? data : null;
  out.textContent = ok ? data.message : data.error;
  out.className = ok && data.ok ? "good" : "bad";
  document.body.dataset.check = ok ? (data.suspect === null ? "ok" : `suspect-${data.suspect + 1}`) : "error";
  renderGround();
  render();
}

async function save() {
  $("problems").textContent = "";
  const cal = calibrationBody();
  if (cal.error) { status(cal.error, "error"); $("problems").textContent = cal.error; return; }
  status("validating and saving…");
  const {ok, data} = await api("/api/save", {camera: state.camera, zones: state.zones, lines: state.lines, calibration: cal.value});
  if (!ok) {
    status(`not saved: ${data.error}`, "error");
    $("problems").textContent = (data.problems || []).join("\n");
    document.body.dataset.saved = "error";
    return;
  }
  state.dirty = false;
  state.cam.zones = JSON.parse(JSON.stringify(state.zones));
  state.cam.lines = JSON.parse(JSON.stringify(state.lines));
  state.cam.calibration = cal.value;
  status(`saved to ${data.path}` + (data.backup ? ` (backup ${data.backup})` : "") +
    (data.comments_kept ? "" : " — the file's layout could not be kept, comments were lost"), "ok");
  document.body.dataset.saved = "ok";
}

async function init() {
  const {ok, data} = await api("/api/config");
  if (!ok) { status(data.error || "cannot load config", "error"); return; }
  state.config = data;
  const sel = $("camera");
  data.cameras.forEach((c) => sel.appendChild(new Option(`${c.id} (${c.source})`, c.id)));
  sel.onchange = () => loadCamera(sel.value);
  $("save-target").textContent = `Saving writes ${data.save_path}` + (data.backup ? " (the old file is kept as .bak; comments are kept)" : " (a new file)");
  $("refresh").onclick = () => refreshSnapshot(state.cam && state.cam.duration_s ? parseFloat($("position").value) : undefined);
  $("detect").onclick = () => { if (state.live) stopLive(); previewDetections(); };
  $("live").onclick = () => (state.live ? stopLive() : startLive());
  $("position").onchange = () => { if (state.live) stopLive(); refreshSnapshot(parseFloat($("position").value)); };
  document.querySelectorAll("button.mode").forEach((b) => (b.onclick = () => setMode(b.dataset.mode)));
  $("finish").onclick = finishShape;
  $("delete").onclick = deleteSelected;
  $("check-ground").onclick = checkGround;
  $("save").onclick = save;
  window.addEventListener("beforeunload", (ev) => { if (state.dirty) { ev.preventDefault(); ev.returnValue = ""; } });
  setMode("select");
  loadCamera(data.cameras[0].id);
  document.body.dataset.ready = "1";
}

init();
