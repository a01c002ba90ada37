// One workflow run, live: the graph it ran drawn as boxes by depth (run inputs on the left,
// each node one column right of the deepest node it takes from), each box coloured by its
// node's state from GET /v1/workflow-runs/{id}, read again on each event of the tenant's
// stream that concerns it (or polled where streams are cut) until the run and its jobs are over;
// each node's steps with their jobs, cost, timings and output previews; the run's events;
// cancel and retry. Nothing is redrawn that did not change, so a playing preview plays on.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, credits, bytes, when, duration, preview } = faktry;
  const id = $("#run").dataset.runId;
  const graph = JSON.parse($("#run-graph").textContent || "{}");
  const nodes = graph.nodes || {};
  const inputs = graph.inputs || {};
  const DONE = ["succeeded", "failed", "canceled"];
  const ACTIVE = ["queued", "running"];
  const SVG = "http://www.w3.org/2000/svg";
  const cancel = $("#run-cancel");
  const retry = $("#run-retry");
  const errorEl = $("#run-error");
  const noticeEl = $("#run-notice");
  const MAX_PREVIEWS = 6;
  const MAX_STEP_ROWS = 20;

  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  // A field's reference, or each reference of a list of files written for a list field.
  const fieldRefs = (value) => (Array.isArray(value) ? value : [value]).filter(isObj);
  const refs = (spec) => Object.values(isObj(spec?.input) ? spec.input : {}).flatMap(fieldRefs);

  function s(tag, attrs = {}, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) if (value !== null && value !== undefined) el.setAttribute(name, String(value));
    for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return el;
  }

  // -- layout: a column per depth, in the topological order ---------------------------------

  const depth = {};
  function depthOf(name, seen = new Set()) {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0; // a cycle cannot run; drawn flat rather than not at all
    seen.add(name);
    const ups = refs(nodes[name]).filter((r) => typeof r.node === "string" && r.node in nodes);
    const base = Object.keys(inputs).length ? 1 : 0;
    depth[name] = ups.length ? 1 + Math.max(...ups.map((r) => depthOf(r.node, seen))) : base;
    return depth[name];
  }
  const order = Object.keys(nodes).map((n) => [n, depthOf(n)]).sort((a, b) => a[1] - b[1]).map(([n]) => n);

  const W = 190;
  const H = 66;
  const GAP_X = 70;
  const GAP_Y = 22;
  const PAD = 12;
  const boxes = {}; // "input:x" / "node:x" -> {x, y}
  const columns = [];
  if (Object.keys(inputs).length) columns[0] = Object.keys(inputs).map((n) => `input:${n}`);
  for (const name of order) (columns[depth[name]] ||= []).push(`node:${name}`);
  columns.forEach((column, c) => (column || []).forEach((key, r) => {
    boxes[key] = { x: PAD + c * (W + GAP_X), y: PAD + r * (H + GAP_Y) };
  }));
  const width = PAD * 2 + Math.max(1, columns.length) * (W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => (c || []).length)) * (H + GAP_Y) - GAP_Y;
  const svgNodes = {};

  function draw() {
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, class: "wf-svg", role: "group", "aria-labelledby": "graph-h" },
      s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "wf-arrow" }))));
    const edges = s("g", { class: "wf-edges" });
    svg.append(edges);
    for (const [name, spec] of Object.entries(nodes)) {
      const to = boxes[`node:${name}`];
      for (const [field, ref] of Object.entries(isObj(spec?.input) ? spec.input : {}).flatMap(([f, v]) => fieldRefs(v).map((r) => [f, r]))) {
        const from = boxes[ref.input !== undefined ? `input:${ref.input}` : `node:${ref.node}`];
        if (!from || !to) continue;
        const x1 = from.x + W;
        const y1 = from.y + H / 2;
        const x2 = to.x;
        const y2 = to.y + H / 2;
        const bend = Math.max(30, (x2 - x1) / 2);
        edges.append(s("path", {
          d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
          class: `wf-edge${spec.map === field ? " wf-edge-map" : ""}`, "marker-end": "url(#arrow)",
          "data-from": ref.input !== undefined ? `input:${ref.input}` : `node:${ref.node}`, "data-to": name,
        }, s("title", {}, `${field}${spec.map === field ? " (one job per file)" : ""}`)));
      }
    }
    for (const [name, spec] of Object.entries(inputs)) {
      const { x, y } = boxes[`input:${name}`];
      svg.append(s("g", { class: "wf-svg-input", transform: `translate(${x} ${y})` },
        s("rect", { width: W, height: H, rx: 30 }),
        s("text", { x: 14, y: 27, class: "wf-svg-name" }, name),
        s("text", { x: 14, y: 48, class: "wf-svg-sub" }, `run input · ${spec?.kind || "any"}${spec?.list ? " list" : ""}`)));
    }
    for (const name of order) {
      const { x, y } = boxes[`node:${name}`];
      const state = s("text", { x: 12, y: 58, class: "wf-svg-state" }, "waiting");
      const label = s("title", {}, `${name}: waiting`);
      const link = s("a", { href: `#node-${name}`, class: "wf-svg-node", "data-node": name, "data-status": "waiting", transform: `translate(${x} ${y})` },
        label,
        s("rect", { width: W, height: H, rx: 6 }),
        s("text", { x: 12, y: 22, class: "wf-svg-name" }, name),
        s("text", { x: 12, y: 40, class: "wf-svg-sub" }, `${nodes[name]?.type || "?"}${nodes[name]?.map ? " · each" : ""}`),
        state);
      svgNodes[name] = { link, state, label };
      svg.append(link);
    }
    fill($("#graph"), svg);
  }

  // -- the nodes' details ---------------------------------------------------------------------

  const cards = {};
  const fileCache = new Map();
  const fileInfo = (fileId) => {
    if (!fileCache.has(fileId)) fileCache.set(fileId, api("GET", `/v1/files/${encodeURIComponent(fileId)}`));
    return fileCache.get(fileId);
  };

  function card(name) {
    const spec = nodes[name] || {};
    const status = h("span", { class: "badge", "data-status": "waiting", role: "status" }, "waiting");
    const facts = h("p", { class: "help wf-facts" });
    const steps = h("div", { class: "wf-steps" });
    const outputs = h("ul", { class: "outputs wf-outputs" });
    const more = h("p", { class: "help", hidden: true });
    const li = h("li", { class: "card wf-node", id: `node-${name}`, dataset: { node: name }, tabindex: "-1" },
      h("div", { class: "heading" }, h("h3", {}, name, " ", h("span", { class: "help" }, spec.type || "")), status),
      facts, steps, outputs, more);
    cards[name] = { li, status, facts, steps, outputs, more, shown: new Set(), signature: "" };
    return li;
  }

  function timing(list) {
    const started = list.map((st) => st.started_at).filter(Boolean).sort()[0];
    const ends = list.map((st) => st.finished_at);
    const finished = ends.every(Boolean) && ends.length ? ends.sort().at(-1) : null;
    if (!started) return "";
    const end = finished ? new Date(finished) : new Date();
    return `${finished ? "took" : "running for"} ${duration((end - new Date(started)) / 1000)}`;
  }

  function counts(list) {
    const by = {};
    for (const st of list) by[st.status] = (by[st.status] || 0) + 1;
    return Object.entries(by).map(([k, v]) => `${v} ${k}`).join(", ");
  }

  const jobLink = (st) => (st.job_id ? h("a", { href: `/jobs/${encodeURIComponent(st.job_id)}` }, st.job_id) : "no job");

  function stepRows(list) {
    if (list.length === 1) {
      const st = list[0];
      return h("p", {}, "Job: ", jobLink(st),
        st.reused_from ? ` · reused the output of step ${st.reused_from}` : "",
        st.error ? h("span", { "data-kind": "error" }, ` · ${st.error.message || st.error.code} (${st.error.code})`) : "");
    }
    const rows = list.slice(0, MAX_STEP_ROWS).map((st) => h("tr", { dataset: { item: st.item, status: st.status } },
      h("td", {}, String(st.item)),
      h("td", {}, h("span", { class: "badge", "data-status": st.status }, st.status)),
      h("td", {}, jobLink(st)),
      h("td", {}, credits(st.cost || 0)),
      h("td", {}, st.error ? `${st.error.code}` : "")));
    return h("div", { class: "table-wrap" },
      h("table", {},
        h("caption", { class: "visually-hidden" }, "Items"),
        h("thead", {}, h("tr", {}, ["Item", "Status", "Job", "Cost (credits)", "Error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)),
      list.length > MAX_STEP_ROWS ? h("p", { class: "help" }, `and ${list.length - MAX_STEP_ROWS} more items`) : null);
  }

  async function addPreview(entry, fileId) {
    const item = h("li", { class: "output", dataset: { fileId } }, h("p", { class: "help" }, fileId));
    entry.outputs.append(item);
    try {
      const file = await fileInfo(fileId);
      fill(item,
        h("h4", {}, file.filename || file.name || file.id),
        file.kind === "playlist"
          ? h("p", { class: "help" }, `HLS playlist with ${file.file_count || 1} files; play it with an HLS player.`)
          : preview(file),
        h("p", {},
          h("a", { href: file.url, download: file.filename || file.name || "", class: "button small" }, "Download"),
          " ", h("span", { class: "help" }, `${file.kind}, ${bytes(file.total_size || file.size)}`)));
      item.dataset.kind = file.kind;
    } catch (err) {
      fill(item, h("p", { class: "help" }, `${fileId}: ${err.message}`));
    }
  }

  function renderNode(name, node) {
    const entry = cards[name];
    const list = node?.steps || [];
    const status = node?.status || "waiting";
    entry.status.textContent = status;
    entry.status.dataset.status = status;
    entry.li.dataset.status = status;
    const svg = svgNodes[name];
    const summary = list.length > 1 ? `${status} · ${counts(list)}` : status;
    if (svg) {
      svg.link.setAttribute("data-status", status);
      svg.state.textContent = list.length > 1 ? `${status} · ${list.filter((st) => st.status === "succeeded" || st.status === "reused").length}/${list.length}` : status;
      svg.label.textContent = `${name}: ${summary}`;
    }
    const facts = [];
    if (list.length > 1) facts.push(`${list.length} items: ${counts(list)}`);
    facts.push(`cost ${credits(node?.cost || 0)} credits`);
    const time = timing(list);
    if (time) facts.push(time);
    entry.facts.textContent = facts.join(" · ");
    // Steps and outputs change only when a step does: a playing video is not replaced.
    const signature = JSON.stringify(list.map((st) => [st.status, st.job_id, st.error, st.outputs.length, st.cost]));
    if (signature !== entry.signature) {
      entry.signature = signature;
      fill(entry.steps, list.length ? stepRows(list) : h("p", { class: "help" }, "No job yet."));
    }
    const ready = list.filter((st) => st.status === "succeeded" || st.status === "reused").flatMap((st) => st.outputs);
    for (const fileId of ready.slice(0, MAX_PREVIEWS)) {
      if (entry.shown.has(fileId)) continue;
      entry.shown.add(fileId);
      addPreview(entry, fileId);
    }
    entry.more.hidden = ready.length <= MAX_PREVIEWS;
    entry.more.textContent = `and ${ready.length - MAX_PREVIEWS} more outputs: open the items' jobs to see them.`;
  }

  // -- the run --------------------------------------------------------------------------------

  let last = null;

  function render(run) {
    last = run;
    const state = $("#run-state");
    state.textContent = run.status;
    state.dataset.status = run.status;
    $("#run").dataset.status = run.status;
    $("#run-attempt").textContent = run.attempt > 1 ? `attempt ${run.attempt}` : "";
    const version = $("#run-version");
    if (version) version.textContent = run.version ? `version ${run.version}` : "";
    $("#run-cost").textContent = DONE.includes(run.status)
      ? `${credits(run.cost.charged || 0)} credits charged (quoted ${credits(run.cost.quoted || 0)})`
      : `${credits(run.cost.charged || 0)} credits charged so far; ${credits(run.cost.quoted || 0)} held for the run`;
    $("#run-started").textContent = when(run.started_at || run.created_at);
    const begin = run.started_at || run.created_at;
    const end = run.finished_at ? new Date(run.finished_at) : new Date();
    $("#run-time").textContent = begin ? `${run.finished_at ? "took" : "running for"} ${duration((end - new Date(begin)) / 1000)}` : "–";
    if (run.error) {
      say(errorEl, run.error.message
        ? `The run ${run.status}: ${run.error.message} (${run.error.code})`
        : `The run ${run.status} (${run.error.code}); the nodes below say where and why.`, "error");
    }
    else if (!errorEl.dataset.kept) say(errorEl, "");
    cancel.hidden = run.status !== "running";
    retry.hidden = run.status !== "failed";
    for (const name of order) renderNode(name, run.nodes?.[name]);
  }

  let after = 0;
  const eventsEl = $("#events");
  async function events() {
    for (;;) {
      const page = await api("GET", `/v1/workflow-runs/${encodeURIComponent(id)}/events?after=${after}&limit=100`);
      for (const e of page.data) {
        if (e.id <= after) continue; // a poll restarted by a button may read the same page twice
        after = e.id;
        const where = e.node ? ` ${e.node}${e.item ? ` item ${e.item}` : ""}` : "";
        const data = Object.keys(e.data || {}).length ? ` ${JSON.stringify(e.data)}` : "";
        eventsEl.append(h("li", { dataset: { kind: e.kind, node: e.node || "" } },
          h("time", { datetime: e.at }, when(e.at)), " ", h("strong", {}, e.kind), where, h("span", { class: "help" }, data)));
      }
      if (!page.next_after) return;
    }
  }

  const busy = (run) => !DONE.includes(run.status)
    || Object.values(run.nodes || {}).some((node) => node.steps.some((st) => ACTIVE.includes(st.status)));

  async function tick() {
    const run = await api("GET", `/v1/workflow-runs/${encodeURIComponent(id)}`);
    render(run);
    await events();
    return busy(run);
  }

  let stop = null;
  const watch = () => {
    if (stop) stop();
    // The run's own events, and any job's (its steps are jobs), bring a fresh read.
    stop = faktry.live("/v1/events/stream", tick, {
      wanted: (event) => event.run_id === id || Boolean(event.job_id),
    });
  };

  async function act(button, path, done) {
    button.disabled = true;
    say(errorEl, "");
    delete errorEl.dataset.kept;
    say(noticeEl, "");
    try {
      render(await api("POST", path));
      say(noticeEl, done, "ok");
      watch();
    } catch (err) {
      showError(errorEl, err);
      errorEl.dataset.kept = "true"; // until the next action, whatever the polls say
    } finally {
      button.disabled = false;
    }
  }

  cancel.addEventListener("click", () => {
    act(cancel, `/v1/workflow-runs/${encodeURIComponent(id)}/cancel`, "Canceled: nothing more will start, and what was held is given back.");
  });
  retry.addEventListener("click", () => act(retry, `/v1/workflow-runs/${encodeURIComponent(id)}/retry`,
    "Retrying the failed nodes and what depends on them; succeeded nodes keep their outputs."));

  draw();
  fill($("#run-nodes"), order.map(card));
  watch();
  // The clock of a running run moves even between answers.
  setInterval(() => { if (last && !last.finished_at) render(last); }, 1000);
});
