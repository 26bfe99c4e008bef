// The acq service's page: plain JavaScript, no build step, nothing from the network.
//
// Status comes from the WebSocket api/v1/ws/status (the whole /api/status object on each
// change), or, while that socket is not there, from polling /api/status every 0.5 s.
// The current run comes from api/v1/ws/documents (arrays of {run_uid, index, name, doc}).
// With API keys configured, a 401 makes the page ask for a key; the key is kept in
// sessionStorage and sent as "Authorization: ApiKey <key>" (and ?api_key= on sockets).
"use strict";

const KEY_STORE = "acq-api-key";
const POLL_MS = 500;
const MAX_ROWS = 2000; // rows the live table keeps (the latest)
const MAX_MARKERS = 1000; // the plot marks each point up to this many
const MAX_LINE = 4000; // points the plot's line goes through, at most
const SVG = "http://www.w3.org/2000/svg";

const app = {
  key: sessionStorage.getItem(KEY_STORE),
  started: false,
  poller: null,
  statusSocket: null,
  documentsSocket: null,
  queueUid: null,
  historyUid: null,
  runningUid: null,
  run: null,
  storedAsked: false,
  drawPending: false,
};

const byId = (id) => document.getElementById(id);

class AuthNeeded extends Error {}

// -- talking to the service ---------------------------------------------------------

function detailOf(answer) {
  if (!answer) return "";
  const detail = answer.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  return answer.msg || "";
}

async function api(path, body) {
  const headers = {};
  if (app.key) headers.Authorization = `ApiKey ${app.key}`;
  const init = { method: body === undefined ? "GET" : "POST", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (response.status === 401) {
    askForKey(detailOf(answer) || "credentials needed");
    throw new AuthNeeded(detailOf(answer));
  }
  if (!response.ok) {
    throw new Error(`${response.status}: ${detailOf(answer) || response.statusText}`);
  }
  return answer;
}

function socketUrl(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (app.key) url.searchParams.set("api_key", app.key);
  return url.href;
}

function say(text, kind) {
  const message = byId("message");
  message.textContent = text;
  message.className = kind;
}

// -- credentials ----------------------------------------------------------------------

function askForKey(reason) {
  stopLive();
  app.started = false;
  byId("main").hidden = true;
  byId("login").hidden = false;
  byId("login-msg").textContent = app.key ? `the key was refused: ${reason}` : reason;
  byId("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  app.key = byId("api-key").value.trim();
  sessionStorage.setItem(KEY_STORE, app.key);
  byId("api-key").value = "";
  start();
}

// -- engine state ---------------------------------------------------------------------

function showStatus(status) {
  byId("manager-state").textContent = status.manager_state;
  byId("re-state").textContent = status.re_state;
  byId("items-in-queue").textContent = status.items_in_queue;
  byId("items-in-history").textContent = status.items_in_history;
  document.body.dataset.manager = status.manager_state;
  document.body.dataset.engine = status.re_state;
  if (status.plan_queue_uid !== app.queueUid || status.running_item_uid !== app.runningUid) {
    app.queueUid = status.plan_queue_uid;
    app.runningUid = status.running_item_uid;
    refreshQueue();
  }
  if (status.plan_history_uid !== app.historyUid) {
    app.historyUid = status.plan_history_uid;
    refreshHistory();
  }
}

async function pollStatus() {
  try {
    showStatus(await api("api/status"));
  } catch (error) {
    if (!(error instanceof AuthNeeded)) byId("link").textContent = `no answer: ${error.message}`;
  }
}

function startPolling() {
  if (app.poller === null) app.poller = setInterval(pollStatus, POLL_MS);
  byId("link").textContent = "polling";
}

function stopPolling() {
  if (app.poller !== null) clearInterval(app.poller);
  app.poller = null;
}

// A socket opened again after it closes (1 s, or 5 s if it never answered); a refused
// credential (4401) asks for a key, a refused scope or parameter (4403, 1008) is shown.
function follow(slot, path, onMessage, onLost) {
  const socket = new WebSocket(socketUrl(path));
  app[slot] = socket;
  let heard = false;
  socket.onmessage = (event) => {
    heard = true;
    onMessage(JSON.parse(event.data));
  };
  socket.onclose = (event) => {
    if (app[slot] !== socket) return; // replaced or stopped on purpose
    if (onLost) onLost();
    if (event.code === 4401) {
      askForKey(event.reason || "credentials needed");
    } else if (event.code === 4403 || event.code === 1008) {
      app[slot] = null;
      say(`${path}: ${event.reason}`, "error");
    } else {
      const again = () => app[slot] === socket && follow(slot, path, onMessage, onLost);
      setTimeout(again, heard ? 1000 : 5000);
    }
  };
}

function watchStatus() {
  follow(
    "statusSocket",
    "api/v1/ws/status",
    (status) => {
      stopPolling();
      byId("link").textContent = "live";
      showStatus(status);
    },
    startPolling,
  );
}

async function control(button) {
  const body = button.dataset.body ? JSON.parse(button.dataset.body) : {};
  try {
    const answer = await api(button.dataset.post, body);
    if (answer.success === false) say(`${button.textContent}: ${answer.msg}`, "error");
    else say(`${button.textContent}: done`, "ok");
  } catch (error) {
    if (!(error instanceof AuthNeeded)) say(`${button.textContent}: ${error.message}`, "error");
  }
  if (app.poller !== null) pollStatus();
}

// -- queue and history ----------------------------------------------------------------

function describeCall(item) {
  const args = (item.args || []).map((a) => JSON.stringify(a));
  const kwargs = Object.entries(item.kwargs || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${item.name}(${[...args, ...kwargs].join(", ")})`;
}

function itemElement(item) {
  const li = document.createElement("li");
  li.dataset.uid = item.item_uid;
  const call = document.createElement("code");
  call.className = "call";
  call.textContent = describeCall(item);
  li.append(call);
  return li;
}

async function refreshQueue() {
  let answer;
  try {
    answer = await api("api/queue/get");
  } catch (error) {
    if (!(error instanceof AuthNeeded)) say(`queue: ${error.message}`, "error");
    return;
  }
  const list = byId("queue-list");
  const rows = [];
  if (answer.running_item && answer.running_item.item_uid) {
    const li = itemElement(answer.running_item);
    li.classList.add("running");
    li.append(" ", Object.assign(document.createElement("span"), { textContent: "running" }));
    rows.push(li);
  }
  for (const item of answer.items) {
    const li = itemElement(item);
    const remove = document.createElement("button");
    remove.textContent = "Remove";
    remove.className = "remove";
    remove.onclick = () => removeItem(item.item_uid);
    li.append(" ", remove);
    rows.push(li);
  }
  list.replaceChildren(...rows);
}

async function removeItem(uid) {
  try {
    const answer = await api("api/queue/item/remove", { uid });
    if (answer.success === false) say(`remove: ${answer.msg}`, "error");
    else say(`removed ${describeCall(answer.item)}`, "ok");
  } catch (error) {
    if (!(error instanceof AuthNeeded)) say(`remove: ${error.message}`, "error");
  }
  refreshQueue();
}

async function refreshHistory() {
  let answer;
  try {
    answer = await api("api/history/get");
  } catch (error) {
    if (!(error instanceof AuthNeeded)) say(`history: ${error.message}`, "error");
    return;
  }
  const rows = answer.items
    .slice()
    .reverse()
    .map((item) => {
      const li = itemElement(item);
      const result = item.result || {};
      li.dataset.exitStatus = result.exit_status || "";
      const status = document.createElement("span");
      status.className = `exit ${result.exit_status}`;
      status.textContent = result.exit_status || "?";
      li.append(" ", status);
      if (result.msg) {
        const msg = document.createElement("span");
        msg.className = "msg";
        msg.textContent = result.msg;
        li.append(" ", msg);
      }
      return li;
    });
  byId("history-list").replaceChildren(...rows);
  const last = answer.items[answer.items.length - 1];
  const runs = (last && last.result && last.result.run_uids) || [];
  if (app.run === null && !app.storedAsked && runs.length) showStoredRun(runs[runs.length - 1]);
}

// -- adding an item -------------------------------------------------------------------

async function loadPlans() {
  const answer = await api("api/plans/allowed");
  const select = byId("add-plan");
  const plans = answer.plans_allowed;
  const options = Object.keys(plans)
    .sort()
    .map((name) => new Option(name, name));
  select.replaceChildren(...options);
  select.onchange = () => showPlan(plans[select.value]);
  showPlan(plans[select.value]);
}

function showPlan(plan) {
  if (!plan) return;
  const names = plan.parameters.map((p) =>
    p.default === undefined ? p.name : `${p.name}=${p.default}`,
  );
  byId("add-doc").textContent = `${plan.name}(${names.join(", ")}): ${plan.description}`;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function parsed(id, what, check) {
  const text = byId(id).value.trim() || (what === "args" ? "[]" : "{}");
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${what}: not valid JSON (${error.message})`);
  }
  if (!check(value)) {
    throw new Error(`${what}: must be a JSON ${what === "args" ? "list" : "object"}`);
  }
  return value;
}

async function addItem(event) {
  event.preventDefault();
  let item;
  try {
    item = {
      name: byId("add-plan").value,
      args: parsed("add-args", "args", Array.isArray),
      kwargs: parsed("add-kwargs", "kwargs", isObject),
      item_type: "plan",
    };
  } catch (error) {
    say(error.message, "error");
    return;
  }
  try {
    const answer = await api("api/queue/item/add", { item });
    if (answer.success === false) say(`add: ${answer.msg}`, "error");
    else say(`added ${describeCall(answer.item)}`, "ok");
  } catch (error) {
    if (!(error instanceof AuthNeeded)) say(`add: ${error.message}`, "error");
  }
  if (app.poller !== null) pollStatus();
}

// -- the current run ------------------------------------------------------------------

function newRun(runUid, start) {
  app.run = {
    uid: runUid,
    start,
    lastIndex: -1,
    stream: null,
    descriptors: new Set(),
    keys: [],
    shapes: {},
    x: null,
    y: null,
    rows: new Map(),
    points: [],
  };
  const names = [`scan ${start.scan_id ?? "?"}`, start.plan_name ?? "", runUid.slice(0, 8)];
  byId("run-title").textContent = `${names.join(" · ")} · running`;
  byId("run").dataset.runUid = runUid;
  byId("run").dataset.exitStatus = "";
  byId("run-table").tHead.replaceChildren();
  byId("run-table").tBodies[0].replaceChildren();
  byId("plot").replaceChildren();
}

function fieldOf(descriptor, device) {
  const hinted = descriptor.hints && descriptor.hints[device] && descriptor.hints[device].fields;
  if (hinted && hinted.length) return hinted[0];
  return device in descriptor.data_keys ? device : null;
}

function isScalar(run, key) {
  return key !== null && run.keys.includes(key) && run.shapes[key].length === 0;
}

function chooseAxes(run, descriptor) {
  const motors = run.start.motors || [];
  const hinted = Object.keys(descriptor.hints || {});
  const detectors = [...(run.start.detectors || []), ...hinted.filter((d) => !motors.includes(d))];
  run.x = motors.map((m) => fieldOf(descriptor, m)).find((k) => isScalar(run, k)) || null;
  run.y =
    detectors.map((d) => fieldOf(descriptor, d)).find((k) => isScalar(run, k) && k !== run.x) ||
    run.keys.find((k) => isScalar(run, k) && k !== run.x) ||
    null;
}

// The stream shown: "primary"; until it comes, any other but "baseline" (a fly scan's).
function streamRank(name) {
  if (name === "primary") return 2;
  return name === null || name === "baseline" ? 0 : 1;
}

function addDescriptor(descriptor) {
  const run = app.run;
  if (descriptor.name === run.stream) {
    run.descriptors.add(descriptor.uid); // a second descriptor of the stream: same columns
    return;
  }
  if (streamRank(descriptor.name) <= streamRank(run.stream)) return;
  run.stream = descriptor.name;
  run.descriptors = new Set([descriptor.uid]);
  run.rows.clear();
  run.points = [];
  run.keys = Object.keys(descriptor.data_keys);
  for (const key of run.keys) run.shapes[key] = descriptor.data_keys[key].shape || [];
  chooseAxes(run, descriptor);
  const row = document.createElement("tr");
  for (const name of ["seq_num", ...run.keys]) {
    const th = document.createElement("th");
    th.textContent = name;
    row.append(th);
  }
  byId("run-table").tHead.replaceChildren(row);
  byId("run-table").tBodies[0].replaceChildren();
  byId("run").dataset.stream = run.stream;
}

function cellText(value, shape) {
  if (shape && shape.length) return `array ${shape.join("×")}`;
  if (typeof value === "number") return String(value);
  return JSON.stringify(value);
}

function addRow(seqNum, values) {
  const run = app.run;
  if (run.rows.has(seqNum)) return;
  run.rows.set(seqNum, values);
  const [x, y] = [run.x ? values[run.x] : seqNum, values[run.y]];
  if (Number.isFinite(x) && Number.isFinite(y)) run.points.push([x, y]);
  const tr = document.createElement("tr");
  tr.dataset.seqNum = seqNum;
  const cells = [String(seqNum), ...run.keys.map((k) => cellText(values[k], run.shapes[k]))];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const body = byId("run-table").tBodies[0];
  body.append(tr);
  if (body.rows.length > MAX_ROWS) body.deleteRow(0); // the table keeps the latest rows
  schedulePlot();
}

function onDocument(message, live) {
  const { run_uid: runUid, index, name, doc } = message;
  if (name === "start" && (!app.run || app.run.uid !== runUid)) {
    if (app.run && !live) return; // a stored run never replaces one seen live
    newRun(runUid, doc);
  }
  const run = app.run;
  if (!run || run.uid !== runUid || index <= run.lastIndex) return; // another or a repeat
  run.lastIndex = index;
  if (name === "descriptor") addDescriptor(doc);
  else if (name === "event" && run.descriptors.has(doc.descriptor)) addRow(doc.seq_num, doc.data);
  else if (name === "event_page" && run.descriptors.has(doc.descriptor)) {
    doc.seq_num.forEach((seq, i) => {
      const values = {};
      for (const key of Object.keys(doc.data)) values[key] = doc.data[key][i];
      addRow(seq, values);
    });
  } else if (name === "stop") {
    byId("run").dataset.exitStatus = doc.exit_status;
    const title = byId("run-title");
    title.textContent = title.textContent.replace(/running$/, doc.exit_status);
  }
}

// Each message is an array of documents in order (a lone object is taken as one).
function onDocuments(message, live) {
  for (const entry of Array.isArray(message) ? message : [message]) onDocument(entry, live);
}

function watchDocuments() {
  follow("documentsSocket", "api/v1/ws/documents", (message) => onDocuments(message, true));
}

// The last finished run, read from the catalog, while no run has been seen live.
function showStoredRun(uid) {
  app.storedAsked = true;
  const socket = new WebSocket(socketUrl(`api/v1/ws/documents?run_uid=${encodeURIComponent(uid)}`));
  socket.onmessage = (event) => onDocuments(JSON.parse(event.data), false);
}

// -- the plot: an inline SVG line plot ------------------------------------------------

function schedulePlot() {
  if (app.drawPending) return;
  app.drawPending = true;
  requestAnimationFrame(() => {
    app.drawPending = false;
    drawPlot();
  });
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function extent(values) {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  if (!(high > low)) {
    low -= 0.5;
    high += 0.5;
  }
  return [low, high];
}

function tick(value) {
  return String(Number(value.toPrecision(4)));
}

const FRAME = { width: 560, height: 280, left: 64, right: 16, top: 16, bottom: 40 };

function text(cls, x, y, anchor, content, extra = {}) {
  return svgElement("text", { class: cls, x, y, "text-anchor": anchor, ...extra }, content);
}

function drawPlot() {
  const run = app.run;
  const points = run ? run.points : [];
  if (!points.length) return;
  const { width, height, left, right, top, bottom } = FRAME;
  const [innerWidth, innerHeight] = [width - left - right, height - top - bottom];
  const xKey = run.x || "seq_num";
  const [x0, x1] = extent(points.map((p) => p[0]));
  const [y0, y1] = extent(points.map((p) => p[1]));
  const inset = 0.04; // of the frame, on each side: the end points stay inside it
  const scale = (v, v0, v1, size) => (inset + ((1 - 2 * inset) * (v - v0)) / (v1 - v0)) * size;
  const px = (x) => (left + scale(x, x0, x1, innerWidth)).toFixed(1);
  const py = (y) => (top + innerHeight - scale(y, y0, y1, innerHeight)).toFixed(1);
  const step = Math.ceil(points.length / MAX_LINE); // a long run's line: every step-th point
  const line = points.filter((_, i) => i % step === 0 || i === points.length - 1);
  const vertices = line.map(([x, y]) => `${px(x)},${py(y)}`).join(" ");
  const svg = svgElement("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "data-x": xKey,
    "data-y": run.y,
    "data-points": points.length,
  });
  const middle = top + innerHeight / 2;
  svg.append(
    svgElement("rect", { class: "frame", x: left, y: top, width: innerWidth, height: innerHeight }),
    text("label", left + innerWidth / 2, height - 6, "middle", xKey),
    text("label", 14, middle, "middle", run.y, { transform: `rotate(-90 14 ${middle})` }),
    text("tick", px(x0), height - bottom + 14, "middle", tick(x0)),
    text("tick", px(x1), height - bottom + 14, "middle", tick(x1)),
    text("tick", left - 4, Number(py(y0)) + 4, "end", tick(y0)),
    text("tick", left - 4, Number(py(y1)) + 4, "end", tick(y1)),
    svgElement("polyline", { class: "line", points: vertices }),
  );
  if (points.length <= MAX_MARKERS) {
    for (const [x, y] of points) {
      svg.append(svgElement("circle", { class: "point", cx: px(x), cy: py(y), r: 3 }));
    }
  }
  byId("plot").replaceChildren(svg);
}

// -- start ----------------------------------------------------------------------------

function stopLive() {
  stopPolling();
  for (const name of ["statusSocket", "documentsSocket"]) {
    const socket = app[name];
    app[name] = null;
    if (socket) socket.close();
  }
}

async function start() {
  let status;
  try {
    status = await api("api/status");
  } catch (error) {
    if (!(error instanceof AuthNeeded)) {
      byId("link").textContent = `the service does not answer: ${error.message}`;
      setTimeout(start, 2000);
    }
    return;
  }
  byId("login").hidden = true;
  byId("main").hidden = false;
  app.started = true;
  app.queueUid = app.historyUid = app.runningUid = undefined;
  showStatus(status);
  startPolling();
  watchStatus();
  watchDocuments();
  try {
    await loadPlans();
  } catch (error) {
    if (!(error instanceof AuthNeeded)) say(`plans: ${error.message}`, "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  byId("key-form").addEventListener("submit", useKey);
  byId("add-form").addEventListener("submit", addItem);
  for (const button of document.querySelectorAll("button[data-post]")) {
    button.addEventListener("click", () => control(button));
  }
  start();
});
