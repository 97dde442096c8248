// edge-agent calibrate page: plain JS, no external libraries, talks to edge/tools/calibrate.py.
"use strict";

const KIND_COLOURS = {
  no_parking: "#e62828", bike_bay: "#1ea0e6", bike_watch: "#c878c8", crowd: "#f0c81e", count: "#50c850",
};
const HIT_PX = 10;
const JSON_EXAMPLES = {
  schedule: '{"windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "07:00", "end": "19:00"}], "except_dates": []}',
  classes: '["bicycle", "motorcycle"]',
  exclude: "[[[0.1,0.1],[0.2,0.1],[0.2,0.2]]]",
  lanes: "[[[0.0,0.55],[1.0,0.5],[1.0,0.62],[0.0,0.68]]]",
};

const state = {
  config: null,
  camera: null,      // camera id
  zones: [],         // zone objects as written in YAML (polygon normalised)
  ground: [],        // {x, y, X, Y}
  selected: -1,
  mode: "select",
  drawing: [],       // vertices of the zone being drawn
  drag: null,        // {zone, vertex (or -1 for whole), last: [x, y]}
  detections: [],
  image: new Image(),
  dirty: false,
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
  const opts = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const res = await fetch(path, opts);
  const data = await res.json();
  return {ok: res.ok, data};
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
function inside(p, poly) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}
const r4 = (v) => Math.round(v * 10000) / 10000;

// ---------- drawing ----------
function render() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (state.image.complete && state.image.naturalWidth) ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  const lw = Math.max(2, canvas.width / 400);
  ctx.font = `${Math.round(lw * 7)}px sans-serif`;
  state.zones.forEach((z, i) => {
    const col = KIND_COLOURS[z.kind] || "#aaa";
    const pts = (z.polygon || []).map(toPx);
    if (pts.length < 2) return;
    ctx.beginPath();
    pts.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.globalAlpha = i === state.selected ? 0.35 : 0.2;
    ctx.fillStyle = col;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.lineWidth = i === state.selected ? lw * 1.8 : lw;
    ctx.strokeStyle = col;
    ctx.stroke();
    if (i === state.selected) {
      pts.forEach(([x, y]) => { ctx.fillStyle = "#fff"; ctx.fillRect(x - lw * 2, y - lw * 2, lw * 4, lw * 4); });
    }
    const top = pts.reduce((a, b) => (b[1] < a[1] ? b : a));
    const label = `${z.id} [${z.kind}]` + (z.capacity !== undefined ? ` cap ${z.capacity}` : "");
    ctx.fillStyle = col;
    const tw = ctx.measureText(label).width;
    ctx.fillRect(top[0], top[1] - lw * 9, tw + lw * 2, lw * 9);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, top[0] + lw, top[1] - lw * 2);
  });
  if (state.drawing.length) {
    ctx.strokeStyle = "#fff";
    ctx.setLineDash([lw * 3, lw * 2]);
    ctx.lineWidth = lw;
    ctx.beginPath();
    state.drawing.map(toPx).forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.setLineDash([]);
    state.drawing.map(toPx).forEach(([x, y]) => { ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc(x, y, lw * 2, 0, 7); ctx.fill(); });
  }
  state.ground.forEach((g, i) => {
    const [x, y] = toPx([g.x, g.y]);
    ctx.strokeStyle = "#0ff"; ctx.lineWidth = lw;
    ctx.beginPath(); ctx.moveTo(x - lw * 5, y); ctx.lineTo(x + lw * 5, y); ctx.moveTo(x, y - lw * 5); ctx.lineTo(x, y + lw * 5); ctx.stroke();
    ctx.fillStyle = "#0ff";
    ctx.fillText(`G${i + 1} (${g.X === "" ? "?" : g.X}, ${g.Y === "" ? "?" : g.Y}) m`, x + lw * 3, y - lw * 3);
  });
  state.detections.forEach((d) => {
    const [x1, y1] = toPx([d.box[0], d.box[1]]), [x2, y2] = toPx([d.box[2], d.box[3]]);
    ctx.strokeStyle = "#7f7"; ctx.lineWidth = lw; ctx.setLineDash([lw * 2, lw]);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
    ctx.fillStyle = "#7f7";
    ctx.fillText(`${d.class} ${d.confidence.toFixed(2)}`, x1 + lw, y1 - lw);
  });
}

// ---------- side panel ----------
function schemaFields() {
  const schema = state.config.zone_schema;
  const defs = schema.$defs || {};
  const out = [];
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    if (name === "polygon") continue;
    let prop = raw;
    if (prop.anyOf) {
      const nonNull = prop.anyOf.filter((p) => p.type !== "null");
      prop = Object.assign({}, nonNull.length === 1 ? nonNull[0] : {type: "json"}, {description: raw.description, default: raw.default});
    }
    if (prop.$ref) prop = Object.assign({}, defs[prop.$ref.split("/").pop()] || {}, {description: raw.description});
    let kind = "json";
    if (prop.enum) kind = "enum";
    else if (prop.const !== undefined) kind = "const";
    else if (prop.type === "integer" || prop.type === "number") kind = prop.type;
    else if (prop.type === "boolean") kind = "boolean";
    else if (prop.type === "string") kind = "string";
    out.push({name, kind, prop, required: (schema.required || []).includes(name)});
  }
  return out;
}

function renderZoneList(keepForm) {
  const ul = $("zone-list");
  ul.innerHTML = "";
  state.zones.forEach((z, i) => {
    const li = document.createElement("li");
    li.textContent = `${z.id}  (${z.kind}, ${(z.polygon || []).length} pts)`;
    li.style.borderLeftColor = KIND_COLOURS[z.kind] || "#888";
    li.className = i === state.selected ? "selected" : "";
    li.dataset.index = i;
    li.onclick = () => select(i);
    ul.appendChild(li);
  });
  $("delete-zone").disabled = state.selected < 0;
  if (!keepForm) renderZoneForm();
}

function renderZoneForm() {
  const form = $("zone-form");
  form.innerHTML = "";
  if (state.selected < 0) { form.innerHTML = '<p class="hint">Select a zone to edit its fields.</p>'; return; }
  const z = state.zones[state.selected];
  for (const f of schemaFields()) {
    const label = document.createElement("label");
    label.title = f.prop.description || "";
    const span = document.createElement("span");
    span.textContent = f.name + (f.required ? " *" : "");
    label.appendChild(span);
    let input;
    if (f.kind === "enum") {
      input = document.createElement("select");
      if (!f.required) input.appendChild(new Option("(default)", ""));
      f.prop.enum.forEach((v) => input.appendChild(new Option(String(v), String(v))));
      input.value = z[f.name] === undefined ? "" : String(z[f.name]);
    } else if (f.kind === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = z[f.name] === undefined ? Boolean(f.prop.default) : Boolean(z[f.name]);
    } else if (f.kind === "json") {
      input = document.createElement("textarea");
      input.placeholder = JSON_EXAMPLES[f.name] || "JSON, e.g. " + JSON.stringify(f.prop.default === undefined ? null : f.prop.default);
      input.value = z[f.name] === undefined ? "" : JSON.stringify(z[f.name]);
    } else {
      input = document.createElement("input");
      input.type = f.kind === "string" || f.kind === "const" ? "text" : "number";
      if (f.kind === "integer") input.step = "1";
      input.placeholder = f.prop.default === undefined || f.prop.default === null ? "" : String(f.prop.default);
      input.value = z[f.name] === undefined || z[f.name] === null ? "" : String(z[f.name]);
    }
    input.id = "zone-field-" + f.name;
    input.name = f.name;
    input.onchange = () => setField(z, f, input);
    label.appendChild(input);
    form.appendChild(label);
  }
}

function setField(z, f, input) {
  let v;
  if (f.kind === "boolean") v = input.checked;
  else if (input.value === "") v = undefined;
  else if (f.kind === "integer") v = parseInt(input.value, 10);
  else if (f.kind === "number") v = parseFloat(input.value);
  else if (f.kind === "json") {
    try { v = JSON.parse(input.value); } catch (e) { status(`${f.name}: not valid JSON (${e.message})`, "error"); return; }
  } else v = input.value;
  if (v === undefined || (typeof v === "number" && Number.isNaN(v))) delete z[f.name];
  else z[f.name] = v;
  state.dirty = true;
  renderZoneList(true);  // keep the form (and the focus) while typing
  render();
}

function renderGround() {
  const tbody = $("ground-table").querySelector("tbody");
  tbody.innerHTML = "";
  state.ground.forEach((g, i) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>G${i + 1}</td><td>${g.x.toFixed(3)}, ${g.y.toFixed(3)}</td>` +
      `<td><input class="gx" type="number" step="0.01"></td><td><input class="gy" type="number" step="0.01"></td>` +
      `<td><button class="gdel" title="remove">✕</button></td>`;
    const gx = tr.querySelector(".gx"), gy = tr.querySelector(".gy");
    gx.value = g.X; gy.value = g.Y;
    gx.onchange = () => { g.X = gx.value; state.dirty = true; render(); };
    gy.onchange = () => { g.Y = gy.value; state.dirty = true; render(); };
    tr.querySelector(".gdel").onclick = () => { state.ground.splice(i, 1); state.dirty = true; renderGround(); render(); };
    tbody.appendChild(tr);
  });
}

function select(i) {
  state.selected = i;
  renderZoneList();
  render();
}

function setMode(mode) {
  if (state.mode === "draw" && mode !== "draw") state.drawing = [];
  state.mode = mode;
  document.querySelectorAll("button.mode").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  $("finish-zone").disabled = mode !== "draw";
  $("hint").textContent = {
    select: "Select / move: drag a vertex or the inside of a zone. Delete key removes the selected zone.",
    draw: "Draw zone: click each vertex; click the first vertex, double-click or press Finish zone to close it (≥ 3 points).",
    ground: "Ground points: click a point on the ground, then type its X and Y in metres in the table.",
  }[mode];
  render();
}

function uniqueId(base) {
  const ids = new Set(state.zones.map((z) => z.id));
  let n = state.zones.length + 1;
  while (ids.has(`${base}-${n}`)) n += 1;
  return `${base}-${n}`;
}

function finishZone() {
  if (state.drawing.length < 3) { status("a zone needs at least 3 points", "error"); return; }
  const kindField = schemaFields().find((f) => f.name === "kind");
  const kind = kindField && kindField.prop.enum ? kindField.prop.enum[0] : "count";
  state.zones.push({id: uniqueId("zone"), kind, polygon: state.drawing.map(([x, y]) => [r4(x), r4(y)])});
  state.drawing = [];
  state.dirty = true;
  state.selected = state.zones.length - 1;
  setMode("select");
  renderZoneList();
  status(`zone added; set its id and kind on the right, then Save`, "ok");
}

function deleteZone() {
  if (state.selected < 0) return;
  const z = state.zones.splice(state.selected, 1)[0];
  state.selected = -1;
  state.dirty = true;
  renderZoneList();
  render();
  status(`deleted zone ${z.id} (not saved yet)`);
}

// ---------- mouse ----------
function hitTest(p) {
  const order = state.selected >= 0 ? [state.selected, ...state.zones.keys()] : [...state.zones.keys()];
  for (const i of order) {
    const poly = state.zones[i].polygon || [];
    const v = poly.findIndex((q) => dist(p, q) <= HIT_PX);
    if (v >= 0) return {zone: i, vertex: v};
  }
  for (let i = state.zones.length - 1; i >= 0; i--) if (inside(p, state.zones[i].polygon || [])) return {zone: i, vertex: -1};
  return null;
}

canvas.addEventListener("mousedown", (ev) => {
  const p = toNorm(ev);
  if (state.mode === "draw") {
    if (state.drawing.length >= 3 && dist(p, state.drawing[0]) <= HIT_PX) { finishZone(); return; }
    state.drawing.push(p);
    render();
  } else if (state.mode === "ground") {
    state.ground.push({x: r4(p[0]), y: r4(p[1]), X: "", Y: ""});
    state.dirty = true;
    renderGround();
    render();
  } else {
    const hit = hitTest(p);
    if (hit) { state.drag = Object.assign(hit, {last: p}); select(hit.zone); } else select(-1);
  }
});
canvas.addEventListener("mousemove", (ev) => {
  if (!state.drag) return;
  const p = toNorm(ev);
  const poly = state.zones[state.drag.zone].polygon;
  if (state.drag.vertex >= 0) poly[state.drag.vertex] = [r4(p[0]), r4(p[1])];
  else {
    const dx = p[0] - state.drag.last[0], dy = p[1] - state.drag.last[1];
    const minX = Math.min(...poly.map((q) => q[0])), maxX = Math.max(...poly.map((q) => q[0]));
    const minY = Math.min(...poly.map((q) => q[1])), maxY = Math.max(...poly.map((q) => q[1]));
    const cx = Math.min(Math.max(dx, -minX), 1 - maxX), cy = Math.min(Math.max(dy, -minY), 1 - maxY);
    for (const q of poly) { q[0] = r4(q[0] + cx); q[1] = r4(q[1] + cy); }
  }
  state.drag.last = p;
  state.dirty = true;
  render();
});
window.addEventListener("mouseup", () => { if (state.drag) { state.drag = null; renderZoneList(true); } });
canvas.addEventListener("dblclick", () => { if (state.mode === "draw" && state.drawing.length >= 3) finishZone(); });
window.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "TEXTAREA" || ev.target.tagName === "SELECT") return;
  if (ev.key === "Delete" || ev.key === "Backspace") deleteZone();
  if (ev.key === "Enter" && state.mode === "draw") finishZone();
  if (ev.key === "Escape") setMode("select");
});

// ---------- server calls ----------
function loadCamera(id) {
  const cam = state.config.cameras.find((c) => c.id === id);
  state.camera = id;
  state.zones = JSON.parse(JSON.stringify(cam.zones || []));
  const cal = cam.calibration;
  state.ground = cal ? cal.image_points.map((p, i) => ({
    x: p[0], y: p[1], X: String(cal.ground_points_m[i][0]), Y: String(cal.ground_points_m[i][1]),
  })) : [];
  state.selected = -1;
  state.detections = [];
  renderZoneList();
  renderGround();
  refreshSnapshot();
}

async function refreshSnapshot() {
  status(`grabbing a frame from ${state.camera}…`);
  let res;
  try {
    res = await fetch(`/api/snapshot?camera=${encodeURIComponent(state.camera)}&t=${Date.now()}`);
  } catch (e) { status(`could not reach the server: ${e.message}`, "error"); return; }
  if (!res.ok) { status(`snapshot failed (${res.status})`, "error"); return; }
  const problem = res.headers.get("X-Snapshot-Error");
  const url = URL.createObjectURL(await res.blob());
  const img = new Image();
  img.onload = () => {
    state.image = img;
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    render();
    if (problem) status(`no live frame (zones can still be edited): ${problem}`, "error");
    else status(`snapshot ${canvas.width}×${canvas.height} from ${state.camera}`, "ok");
    document.body.dataset.snapshot = problem ? "placeholder" : "loaded";
  };
  img.onerror = () => status("could not decode the snapshot", "error");
  img.src = url;
}

async function previewDetections() {
  status("running the detector…");
  const {ok, data} = await api(`/api/detect?camera=${encodeURIComponent(state.camera)}`);
  if (!ok) { status(data.error || "detection failed", "error"); return; }
  state.detections = data.detections;
  render();
  status(`${data.detections.length} detection(s)`, "ok");
}

function calibrationBody() {
  if (!state.ground.length) return {value: null};
  if (state.ground.length < 4) return {error: `ground points: ${state.ground.length} given, at least 4 needed (or remove them all)`};
  const missing = state.ground.findIndex((g) => g.X === "" || g.Y === "" || Number.isNaN(parseFloat(g.X)) || Number.isNaN(parseFloat(g.Y)));
  if (missing >= 0) return {error: `ground point G${missing + 1}: enter X and Y in metres`};
  return {value: {
    image_points: state.ground.map((g) => [g.x, g.y]),
    ground_points_m: state.ground.map((g) => [parseFloat(g.X), parseFloat(g.Y)]),
  }};
}

async function checkHomography() {
  const cal = calibrationBody();
  if (cal.error || !cal.value) { $("homography-result").textContent = cal.error || "no ground points"; return; }
  const {ok, data} = await api("/api/homography", Object.assign({camera: state.camera}, cal.value));
  $("homography-result").textContent = ok
    ? `reprojection error: max ${data.max_error_m} m (${data.errors_m.join(", ")})`
    : data.error;
}

async function save() {
  $("problems").textContent = "";
  const cal = calibrationBody();
  if (cal.error) { status(cal.error, "error"); $("problems").textContent = cal.error; return; }
  status("validating and saving…");
  const {ok, data} = await api("/api/save", {camera: state.camera, zones: state.zones, calibration: cal.value});
  if (!ok) {
    status(`not saved: ${data.error}`, "error");
    $("problems").textContent = (data.problems || []).join("\n");
    document.body.dataset.saved = "error";
    return;
  }
  state.dirty = false;
  const cam = state.config.cameras.find((c) => c.id === state.camera);
  cam.zones = JSON.parse(JSON.stringify(state.zones));
  cam.calibration = cal.value;
  status(`saved to ${data.path}` + (data.backup ? ` (backup ${data.backup})` : ""), "ok");
  document.body.dataset.saved = "ok";
}

async function init() {
  const {ok, data} = await api("/api/config");
  if (!ok) { status(data.error || "cannot load config", "error"); return; }
  state.config = data;
  const sel = $("camera");
  data.cameras.forEach((c) => sel.appendChild(new Option(`${c.id} (${c.source})`, c.id)));
  sel.onchange = () => loadCamera(sel.value);
  $("save-target").textContent = `Saving writes ${data.save_path}` + (data.backup ? " (the old file is kept as .bak)" : " (a new file)");
  $("refresh").onclick = refreshSnapshot;
  $("detect").onclick = previewDetections;
  document.querySelectorAll("button.mode").forEach((b) => (b.onclick = () => setMode(b.dataset.mode)));
  $("finish-zone").onclick = finishZone;
  $("delete-zone").onclick = deleteZone;
  $("check-homography").onclick = checkHomography;
  $("save").onclick = save;
  window.addEventListener("beforeunload", (ev) => { if (state.dirty) { ev.preventDefault(); ev.returnValue = ""; } });
  loadCamera(data.cameras[0].id);
  document.body.dataset.ready = "1";
}

init();
