// The workflow editor: a graph built from the API's own job schemas (each job type's input
// and params in /v1/openapi.json, the model catalog in /v1/models), with its JSON beside it.
// Both sides edit one graph object: the form writes it and the JSON view is rewritten; valid
// JSON typed in the view replaces it and the form is drawn again. The API checks the graph
// (on every quote, save and run) and its problems are put next to their node and field.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, ApiError, h, $, fill, say, showError, credits, bytes } = faktry;
  const root = $("#editor");
  const nodesEl = $("#nodes");
  const inputsEl = $("#run-inputs");
  const jsonEl = $("#graph-json");
  const jsonStatus = $("#json-status");
  const alertEl = $("#editor-alert");
  const quoteEl = $("#quote");
  const KINDS = ["image", "video", "audio", "any"];

  let graph = { inputs: {}, nodes: {} };
  let types = {};
  let models = [];
  let files = [];
  let workflow = null; // the saved workflow, once there is one
  let savedJson = null; // the graph as last saved or opened, to tell unsaved changes
  let shownVersion = null;
  const chosen = {}; // run input name -> file id, or a list of them
  let idempotencyKey = null;
  let lastQuote = null;

  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const nodesOf = () => (isObj(graph.nodes) ? graph.nodes : {});
  const inputsOf = () => (isObj(graph.inputs) ? graph.inputs : {});
  const dirty = () => JSON.stringify(graph) !== savedJson;

  function label(name) {
    const text = name.replace(/_id$/, "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  const resolve = (doc, schema) => {
    if (schema && schema.$ref) return resolve(doc, schema.$ref.split("/").slice(1).reduce((o, k) => o[k], doc));
    return schema;
  };

  function paramsSchema(type, model) {
    const schema = types[type]?.params;
    if (!schema) return { properties: {} };
    if (!schema.oneOf) return schema;
    return schema.oneOf.find((variant) => variant.properties.model.const === model) || { properties: {} };
  }

  const fileKinds = (type, field) => types[type]?.input?.properties?.[field]?.["x-faktry-kinds"] || null;

  // -- one form control for one literal value (a param, or an input field that is no file) --

  function literal(id, field, prop, value, required) {
    const common = { id, "data-field": field, required: required || null };
    let el;
    if (prop.enum) {
      el = h("select", common,
        h("option", { value: "" }, prop.default !== undefined ? `Default (${prop.default})` : "Not set"),
        prop.enum.map((v) => h("option", { value: String(v) }, String(v))));
      if (prop.type === "integer" || prop.type === "number") el.dataset.type = prop.type;
      el.value = value === undefined ? "" : String(value);
    } else if (prop.type === "boolean") {
      el = h("input", { ...common, type: "checkbox", checked: value === undefined ? prop.default === true : value === true, "data-type": "boolean" });
      if (prop.default !== undefined) el.dataset.default = String(prop.default);
      return h("div", { class: "check" }, el, h("label", { for: id }, label(field.split(".")[1])));
    } else if (prop.type === "integer" || prop.type === "number") {
      el = h("input", {
        ...common, type: "number", inputmode: prop.type === "integer" ? "numeric" : "decimal",
        min: prop.minimum, max: prop.maximum, step: prop.multipleOf || (prop.type === "integer" ? 1 : "any"),
        placeholder: prop.default !== undefined ? `default ${prop.default}` : null, "data-type": prop.type,
      });
      el.value = value === undefined ? "" : String(value);
    } else if ((prop.maxLength || 0) > 300) {
      el = h("textarea", { ...common, rows: 3, maxlength: prop.maxLength });
      el.value = value === undefined ? "" : String(value);
    } else {
      el = h("input", { ...common, maxlength: prop.maxLength, placeholder: prop.default !== undefined ? `default ${prop.default}` : null });
      el.value = value === undefined ? "" : String(value);
    }
    return wrap(id, label(field.split(".")[1]), el, required, prop.description);
  }

  function wrap(id, text, el, required, help) {
    if (help) el.setAttribute("aria-describedby", `${id}-help`);
    return h("div", { class: "field" },
      h("label", { for: id }, text, required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null),
      el,
      help ? h("p", { class: "help", id: `${id}-help` }, help) : null);
  }

  // -- a file field: a run input, another node's output, or one of the tenant's files --------

  function sourceOptions(self, field, value) {
    const kinds = fileKinds(nodesOf()[self].type, field) || [];
    const encode = JSON.stringify;
    const groups = [];
    const runInputs = Object.entries(inputsOf()).map(([name, spec]) =>
      h("option", { value: encode({ input: name }) },
        `run input “${name}” (${spec?.kind || "any"}${spec?.list ? ", a list: one job per file" : ""})`));
    if (runInputs.length) groups.push(h("optgroup", { label: "Run inputs" }, runInputs));
    const outputs = [];
    for (const [name, spec] of Object.entries(nodesOf())) {
      if (name === self || !isObj(spec)) continue;
      outputs.push(h("option", { value: encode({ node: name, output: 0 }) }, `output of “${name}” (${spec.type})`));
      outputs.push(h("option", { value: encode({ node: name }) }, `every output of “${name}”: one job per file`));
    }
    if (outputs.length) groups.push(h("optgroup", { label: "Outputs of other nodes" }, outputs));
    const mine = files.filter((f) => !kinds.length || kinds.includes(f.kind));
    if (mine.length) {
      groups.push(h("optgroup", { label: "Your files" },
        mine.map((f) => h("option", { value: encode(f.id) }, `${f.filename || f.id} (${f.kind}, ${bytes(f.size)})`))));
    }
    const options = [h("option", { value: "" }, "Not connected"), ...groups];
    const current = value === undefined ? "" : encode(value);
    const known = current === "" || groups.some((g) => [...g.children].some((o) => o.value === current));
    // What the JSON holds is always shown, even what the form would not offer.
    if (!known) options.push(h("option", { value: current }, typeof value === "string" ? value : Array.isArray(value) ? `a list of ${value.length} file(s): ${current}` : current));
    return { options, current };
  }

  function fileField(index, name, field, required) {
    const spec = nodesOf()[name];
    const id = `n${index}-input-${field}`;
    const { options, current } = sourceOptions(name, field, spec.input?.[field]);
    const select = h("select", { id, "data-field": `input.${field}`, "data-source": field, required: required || null }, options);
    select.value = current;
    const kinds = fileKinds(spec.type, field) || [];
    const mapId = `n${index}-map-${field}`;
    const map = h("div", { class: "check" },
      h("input", { type: "checkbox", id: mapId, "data-field": "map", "data-map": field, checked: spec.map === field }),
      h("label", { for: mapId }, "Map: one job per item of a list"));
    const box = wrap(id, label(field), select, required, kinds.length ? `Takes ${kinds.join(" or ")}.` : null);
    box.append(map);
    return box;
  }

  // -- nodes ----------------------------------------------------------------------------------

  function nodeCard(name, spec, index) {
    const headingId = `n${index}-h`;
    const remove = h("button", { type: "button", class: "secondary small", "data-remove-node": name, "aria-label": `Remove node ${name}` }, "Remove");
    const li = h("li", { class: "card wf-node", dataset: { node: name }, "aria-labelledby": headingId },
      h("div", { class: "heading" },
        h("h3", { id: headingId }, name, " ", h("span", { class: "help wf-type" }, isObj(spec) ? spec.type || "" : "")),
        h("span", { class: "wf-price", "data-price": name }),
        remove),
      h("ul", { class: "wf-problems", "aria-live": "polite" }));
    li.append(wrap(`n${index}-name`, "Node name", h("input", { id: `n${index}-name`, value: name, "data-rename": name, maxlength: 40, pattern: "[a-z][a-z0-9_]*" }), false, null));
    if (!isObj(spec)) {
      li.append(h("p", { class: "help" }, "This node is not an object; fix it in the JSON view."));
      return li;
    }
    const typeSelect = h("select", { id: `n${index}-type`, "data-field": "type", "data-set-type": "1" },
      Object.keys(types).map((t) => h("option", { value: t }, t)));
    if (!types[spec.type]) typeSelect.prepend(h("option", { value: String(spec.type ?? "") }, `${spec.type ?? "no type"} (unknown)`));
    typeSelect.value = String(spec.type ?? "");
    li.append(wrap(`n${index}-type`, "Type", typeSelect, true, types[spec.type]?.description || null));
    const type = types[spec.type];
    if (!type) return li;
    const params = isObj(spec.params) ? spec.params : {};
    if (type.params.oneOf) {
      const choices = models.filter((m) => m.job_types.includes(spec.type));
      const select = h("select", { id: `n${index}-model`, "data-field": "params.model", "data-set-model": "1" },
        h("option", { value: "" }, "Choose a model…"),
        choices.map((m) => h("option", { value: m.id }, `${m.id} (${m.provider})`)));
      if (params.model && !choices.some((m) => m.id === params.model)) select.append(h("option", { value: String(params.model) }, `${params.model} (unknown)`));
      select.value = params.model ?? "";
      li.append(wrap(`n${index}-model`, "Model", select, true, models.find((m) => m.id === params.model)?.description || null));
    }
    const given = isObj(spec.input) ? spec.input : {};
    const inputSet = h("fieldset", {}, h("legend", {}, "Input"));
    const required = type.input.required || [];
    const props = Object.entries(type.input.properties || {})
      .sort(([a], [b]) => Number(required.includes(b)) - Number(required.includes(a)));
    for (const [field, prop] of props) {
      if (prop["x-faktry-kinds"]) inputSet.append(fileField(index, name, field, required.includes(field)));
      else inputSet.append(literal(`n${index}-input-${field}`, `input.${field}`, prop, given[field], required.includes(field)));
    }
    li.append(inputSet);
    const schema = paramsSchema(spec.type, params.model);
    const preq = schema.required || [];
    const pprops = Object.entries(schema.properties || {}).filter(([k]) => k !== "model")
      .sort(([a], [b]) => Number(preq.includes(b)) - Number(preq.includes(a)));
    if (pprops.length) {
      li.append(h("fieldset", {}, h("legend", {}, "Settings"),
        pprops.map(([k, prop]) => literal(`n${index}-params-${k}`, `params.${k}`, prop, params[k], preq.includes(k)))));
    }
    return li;
  }

  function inputRow(name, spec, index) {
    const kind = h("select", { id: `in${index}-kind`, "data-input-kind": name }, KINDS.map((k) => h("option", { value: k }, k)));
    kind.value = isObj(spec) && KINDS.includes(spec.kind) ? spec.kind : "any";
    return h("li", { class: "wf-input", dataset: { input: name } },
      wrap(`in${index}-name`, "Input name", h("input", { id: `in${index}-name`, value: name, "data-rename-input": name, maxlength: 40 }), false, null),
      wrap(`in${index}-kind`, "Kind", kind, false, null),
      h("div", { class: "check" },
        h("input", { type: "checkbox", id: `in${index}-list`, "data-input-list": name, checked: isObj(spec) && spec.list === true }),
        h("label", { for: `in${index}-list` }, "A list of files")),
      h("button", { type: "button", class: "secondary small", "data-remove-input": name, "aria-label": `Remove run input ${name}` }, "Remove"));
  }

  function runFiles() {
    const box = $("#run-files");
    const entries = Object.entries(inputsOf());
    fill(box, entries.map(([name, spec], i) => {
      const kind = isObj(spec) ? spec.kind : "any";
      const many = isObj(spec) && spec.list === true;
      const mine = files.filter((f) => kind === "any" || !KINDS.includes(kind) || f.kind === kind);
      const select = h("select", { id: `run-file-${i}`, "data-run-input": name, "data-field": `inputs.${name}`, multiple: many, size: many ? Math.min(6, Math.max(3, mine.length)) : null },
        many ? null : h("option", { value: "" }, "Choose a file…"),
        mine.map((f) => h("option", { value: f.id }, `${f.filename || f.id} (${f.kind}, ${bytes(f.size)})`)));
      const want = chosen[name];
      for (const option of select.options) option.selected = many ? (want || []).includes(option.value) : option.value === want;
      const help = mine.length ? (many ? "Choose one or more files (Ctrl or Shift to pick several)." : null) : `Upload a file of kind ${kind} below, or in the library.`;
      return wrap(`run-file-${i}`, `Run input “${name}” (${kind}${many ? ", list" : ""})`, select, true, help);
    }));
    if (!entries.length) fill(box, h("p", { class: "help" }, "This workflow takes no files: it runs as it is."));
  }

  function renderAll() {
    const focused = document.activeElement?.id;
    fill(inputsEl, Object.entries(inputsOf()).map(([name, spec], i) => inputRow(name, spec, i)));
    fill(nodesEl, Object.entries(nodesOf()).map(([name, spec], i) => nodeCard(name, spec, i)));
    runFiles();
    if (focused && focused !== jsonEl.id) document.getElementById(focused)?.focus();
    showQuote();
  }

  function syncJson() {
    if (document.activeElement !== jsonEl) jsonEl.value = JSON.stringify(graph, null, 2);
    const shapeOk = isObj(graph.nodes) && (graph.inputs === undefined || isObj(graph.inputs));
    jsonStatus.textContent = shapeOk ? "In sync with the form."
      : "inputs and nodes must each be an object of named entries: the form shows what it can.";
    jsonStatus.dataset.kind = shapeOk ? "" : "error";
  }

  function changed(structural) {
    idempotencyKey = null; // a changed graph is a new run
    if (structural) renderAll();
    syncJson();
    runNote();
    requote();
  }

  function uniqueName(base, taken) {
    let i = 1;
    while (Object.prototype.hasOwnProperty.call(taken, `${base}${i}`)) i += 1;
    return `${base}${i}`;
  }

  // Renames keep every key's place (the JSON view does not jump) and every reference to it.
  function renameKey(object, from, to) {
    return Object.fromEntries(Object.entries(object).map(([k, v]) => [k === from ? to : k, v]));
  }

  function retarget(match, update) {
    for (const spec of Object.values(nodesOf())) {
      if (!isObj(spec) || !isObj(spec.input)) continue;
      for (const [field, value] of Object.entries(spec.input)) {
        if (isObj(value) && match(value)) spec.input[field] = update(value);
        // A list of files written for a list field: each reference in it.
        if (Array.isArray(value)) spec.input[field] = value.map((item) => (isObj(item) && match(item) ? update(item) : item));
      }
    }
  }

  function readValue(el) {
    if (el.dataset.type === "boolean") {
      if (el.checked) return true;
      return el.dataset.default === "true" ? false : undefined;
    }
    if (el.value === "") return undefined;
    if (el.dataset.type === "integer") return Number.isNaN(Number.parseInt(el.value, 10)) ? el.value : Number.parseInt(el.value, 10);
    if (el.dataset.type === "number") return Number.isNaN(Number(el.value)) ? el.value : Number(el.value);
    return el.value;
  }

  function setIn(spec, group, key, value) {
    if (!isObj(spec[group])) spec[group] = {};
    if (value === undefined) delete spec[group][key];
    else spec[group][key] = value;
    if (group === "params" && !Object.keys(spec.params).length) delete spec.params;
  }

  const isList = (ref) => isObj(ref) && ((ref.node !== undefined && ref.output === undefined)
    || (ref.input !== undefined && inputsOf()[ref.input]?.list === true));

  function onNodeEdit(event) {
    const el = event.target;
    const li = el.closest("[data-node]");
    if (!li) return;
    const name = li.dataset.node;
    const spec = nodesOf()[name];
    if (el.dataset.rename !== undefined) {
      if (event.type !== "change") return;
      const to = el.value.trim();
      if (!to || to === name) return;
      if (Object.prototype.hasOwnProperty.call(nodesOf(), to)) {
        say(alertEl, `There is a node named ${to} already.`, "error");
        el.value = name;
        return;
      }
      graph.nodes = renameKey(nodesOf(), name, to);
      retarget((ref) => ref.node === name, (ref) => ({ ...ref, node: to }));
      changed(true);
      return;
    }
    if (!isObj(spec)) return;
    if (el.dataset.setType) {
      const type = types[el.value];
      const keep = Object.fromEntries(Object.entries(isObj(spec.input) ? spec.input : {})
        .filter(([k]) => type && k in (type.input.properties || {})));
      const next = { type: el.value };
      if (type?.params.oneOf) {
        const first = models.find((m) => m.job_types.includes(el.value));
        if (first) next.params = { model: first.id };
      }
      next.input = keep;
      if (spec.map && spec.map in keep) next.map = spec.map;
      graph.nodes[name] = next;
      changed(true);
      return;
    }
    if (el.dataset.setModel) {
      const schema = paramsSchema(spec.type, el.value);
      const params = Object.fromEntries(Object.entries(isObj(spec.params) ? spec.params : {})
        .filter(([k]) => k !== "model" && k in (schema.properties || {})));
      spec.params = el.value ? { model: el.value, ...params } : params;
      changed(true);
      return;
    }
    if (el.dataset.map) {
      if (el.checked) spec.map = el.dataset.map;
      else if (spec.map === el.dataset.map) delete spec.map;
      changed(false);
      return;
    }
    if (el.dataset.source) {
      const field = el.dataset.source;
      const ref = el.value === "" ? undefined : JSON.parse(el.value);
      setIn(spec, "input", field, ref);
      // A list goes with a map over its field; one file with none.
      if (isList(ref)) spec.map = field;
      else if (spec.map === field) delete spec.map;
      changed(true);
      return;
    }
    const field = el.dataset.field;
    if (!field || !field.includes(".")) return;
    const [group, key] = field.split(".");
    setIn(spec, group, key, readValue(el));
    changed(false);
  }

  function onInputEdit(event) {
    const el = event.target;
    if (el.dataset.renameInput !== undefined) {
      if (event.type !== "change") return;
      const from = el.dataset.renameInput;
      const to = el.value.trim();
      if (!to || to === from) return;
      if (Object.prototype.hasOwnProperty.call(inputsOf(), to)) {
        say(alertEl, `There is a run input named ${to} already.`, "error");
        el.value = from;
        return;
      }
      graph.inputs = renameKey(inputsOf(), from, to);
      retarget((ref) => ref.input === from, () => ({ input: to }));
      if (from in chosen) {
        chosen[to] = chosen[from];
        delete chosen[from];
      }
      changed(true);
    } else if (el.dataset.inputKind) {
      const spec = inputsOf()[el.dataset.inputKind];
      if (isObj(spec)) spec.kind = el.value;
      changed(true);
    } else if (el.dataset.inputList) {
      const name = el.dataset.inputList;
      const spec = inputsOf()[name];
      if (!isObj(spec)) return;
      if (el.checked) spec.list = true;
      else delete spec.list;
      delete chosen[name];
      changed(true);
    }
  }

  nodesEl.addEventListener("input", (event) => {
    // Text is written as it is typed; choices and renames when they are made.
    if (event.target.matches("input:not([type=checkbox]):not([data-rename]), textarea")) onNodeEdit(event);
  });
  nodesEl.addEventListener("change", (event) => {
    if (!event.target.matches("input:not([type=checkbox]):not([data-rename]), textarea")) onNodeEdit(event);
  });
  nodesEl.addEventListener("click", (event) => {
    const name = event.target.dataset?.removeNode;
    if (name === undefined) return;
    delete graph.nodes[name];
    changed(true);
    $("#add-node").focus();
  });
  inputsEl.addEventListener("change", onInputEdit);
  inputsEl.addEventListener("click", (event) => {
    const name = event.target.dataset?.removeInput;
    if (name === undefined) return;
    delete graph.inputs[name];
    delete chosen[name];
    changed(true);
    $("#add-input").focus();
  });
  $("#add-node").addEventListener("click", () => {
    if (!isObj(graph.nodes)) graph.nodes = {};
    const name = uniqueName("node", graph.nodes);
    graph.nodes[name] = { type: Object.keys(types)[0], input: {} };
    changed(true);
    const cards = nodesEl.querySelectorAll("[data-node]");
    cards[cards.length - 1]?.querySelector("[data-set-type]")?.focus();
  });
  $("#add-input").addEventListener("click", () => {
    if (!isObj(graph.inputs)) graph.inputs = {};
    const name = uniqueName("input", graph.inputs);
    graph.inputs[name] = { kind: "any" };
    changed(true);
    inputsEl.lastElementChild?.querySelector("input")?.focus();
  });

  // The JSON view: valid JSON replaces the graph; anything else waits, and says why.
  let jsonTimer = null;
  jsonEl.addEventListener("input", () => {
    clearTimeout(jsonTimer);
    jsonTimer = setTimeout(() => {
      let parsed;
      try {
        parsed = JSON.parse(jsonEl.value);
      } catch (err) {
        jsonStatus.textContent = `Not valid JSON yet (${err.message}); the form shows the last valid graph.`;
        jsonStatus.dataset.kind = "error";
        return;
      }
      if (!isObj(parsed)) {
        jsonStatus.textContent = "A graph is a JSON object with inputs and nodes; the form shows the last valid graph.";
        jsonStatus.dataset.kind = "error";
        return;
      }
      graph = parsed;
      changed(true);
    }, 300);
  });
  jsonEl.addEventListener("blur", () => {
    if (jsonStatus.dataset.kind !== "error") jsonEl.value = JSON.stringify(graph, null, 2);
  });

  // -- problems from the API, next to their node and field ------------------------------------

  function clearProblems() {
    root.querySelectorAll(".wf-problem").forEach((el) => el.remove());
    root.querySelectorAll(".wf-problems").forEach((el) => el.replaceChildren());
    root.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    root.querySelectorAll("[data-has-problems]").forEach((el) => delete el.dataset.hasProblems);
  }

  function showProblems(problems, { quiet = [] } = {}) {
    clearProblems();
    const loose = [];
    for (const problem of problems) {
      if (quiet.includes(problem.code)) continue;
      const text = problem.field ? `${problem.field}: ${problem.message}` : problem.message;
      let card = null;
      if (problem.node !== null && problem.node !== undefined) {
        card = [...nodesEl.querySelectorAll("[data-node]")].find((li) => li.dataset.node === problem.node);
      }
      const scope = card || (problem.field?.startsWith("inputs.") ? $("#run-form") : null);
      const field = problem.field?.replace(/\[\d+\]$/, "");
      const control = scope && field && [...scope.querySelectorAll("[data-field]")].find((el) => el.dataset.field === field);
      if (control) {
        control.setAttribute("aria-invalid", "true");
        const id = `${control.id}-problem-${control.parentElement.querySelectorAll(".wf-problem").length}`;
        const note = h("p", { class: "wf-problem", id, "data-kind": "error", "data-code": problem.code }, problem.message);
        control.setAttribute("aria-describedby", `${control.getAttribute("aria-describedby") || ""} ${id}`.trim());
        control.closest(".field, .check")?.append(note);
      } else if (card) {
        card.querySelector(".wf-problems").append(h("li", { "data-kind": "error", "data-code": problem.code }, text));
      } else {
        loose.push(text);
      }
      if (card) card.dataset.hasProblems = "true";
    }
    return loose;
  }

  function problemsOf(err) {
    return err instanceof ApiError && err.code === "invalid_workflow" ? err.details?.problems || [] : null;
  }

  // -- quote ----------------------------------------------------------------------------------

  function runInputs() {
    const out = {};
    for (const name of Object.keys(inputsOf())) if (chosen[name] !== undefined && chosen[name] !== "" && !(Array.isArray(chosen[name]) && !chosen[name].length)) out[name] = chosen[name];
    return out;
  }

  function showQuote() {
    for (const el of nodesEl.querySelectorAll("[data-price]")) {
      const q = lastQuote?.nodes?.[el.dataset.price];
      el.textContent = q ? `${q.items > 1 ? `${q.items} × ` : ""}${credits(q.unit_price)} credits` : "";
    }
  }

  let quoteTimer = null;
  let quoteSeq = 0;
  function requote() {
    clearTimeout(quoteTimer);
    quoteTimer = setTimeout(async () => {
      const seq = ++quoteSeq;
      try {
        const quote = await api("POST", "/v1/workflows/quote", { graph, inputs: runInputs() });
        if (seq !== quoteSeq) return;
        lastQuote = quote;
        clearProblems();
        say(alertEl, "");
        quoteEl.textContent = `Price: ${credits(quote.price)} credits (you have ${credits(quote.available)})`;
        quoteEl.dataset.kind = quote.sufficient ? "ok" : "error";
        if (!quote.sufficient) quoteEl.textContent += " — not enough credits; buy more under Credits";
      } catch (err) {
        if (seq !== quoteSeq) return;
        lastQuote = null;
        const problems = problemsOf(err);
        if (problems) {
          // Files not chosen yet are no mistake in the graph: the price waits for them.
          const waiting = problems.filter((p) => p.code === "missing_input");
          const loose = showProblems(problems, { quiet: ["missing_input"] });
          say(alertEl, loose.length ? `The workflow has problems: ${loose.join("; ")}` : "");
          const rest = problems.length - waiting.length;
          quoteEl.textContent = rest
            ? `Price: – (${rest} problem${rest > 1 ? "s" : ""}, shown next to ${rest > 1 ? "their nodes" : "its node"})`
            : "Price: – (choose the run's files to see it)";
        } else {
          quoteEl.textContent = `Price: – (${err.message})`;
        }
        quoteEl.dataset.kind = "info";
      }
      showQuote();
    }, 400);
  }

  // -- save -----------------------------------------------------------------------------------

  function showWorkflow(saved) {
    workflow = saved;
    shownVersion = saved.version;
    savedJson = JSON.stringify(graph);
    root.dataset.workflowId = saved.id;
    $("#editor-title").textContent = `Workflow ${saved.name}`;
    document.title = `Workflow ${saved.name} · faktry`;
    $("#save-version").hidden = false;
    $("#save-new").textContent = "Save as a new workflow";
    $("#save-new").classList.add("secondary");
    $("#save-version").classList.remove("secondary");
    versionsNote();
    runNote();
    loadRuns(true);
  }

  function versionsNote() {
    if (!workflow) return;
    const list = (workflow.versions || []).map((v) => v.version);
    const current = workflow.version;
    const older = list.filter((v) => v !== shownVersion);
    const el = $("#versions");
    fill(el,
      shownVersion === current ? `Version ${current} (current)` : `Showing version ${shownVersion}; the current one is ${current}`,
      older.length ? "; other versions: " : ".",
      older.flatMap((v, i) => [i ? ", " : "", h("a", { href: `/workflows/${encodeURIComponent(workflow.id)}${v === current ? "" : `?version=${v}`}` }, `v${v}`)]));
  }

  function runNote() {
    const note = $("#run-note");
    if (!workflow) note.textContent = "Not saved: the run uses the graph as shown, and is not kept in a workflow's history.";
    else if (dirty()) note.textContent = "Unsaved changes: the run uses the graph as shown, outside the workflow's history. Save a new version to keep it.";
    else note.textContent = `Runs version ${shownVersion} of ${workflow.name}.`;
  }

  async function save(asVersion) {
    const statusEl = $("#save-status");
    const name = $("#wf-name");
    say(statusEl, "");
    name.removeAttribute("aria-invalid");
    const buttons = [$("#save-new"), $("#save-version")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const description = $("#wf-description").value.trim();
      let saved;
      if (asVersion) {
        saved = await api("POST", `/v1/workflows/${encodeURIComponent(workflow.id)}/versions`, { graph, description });
      } else {
        saved = await api("POST", "/v1/workflows", { name: name.value.trim(), description, graph });
        history.replaceState(null, "", `/workflows/${encodeURIComponent(saved.id)}`);
      }
      clearProblems();
      say(alertEl, "");
      showWorkflow(saved);
      say(statusEl, asVersion ? `Saved version ${saved.version}.` : `Saved as ${saved.name}, version ${saved.version}.`, "ok");
    } catch (err) {
      const problems = problemsOf(err);
      if (problems) {
        const loose = showProblems(problems);
        say(statusEl, `Not saved: ${err.message}. Each problem is shown next to its node.${loose.length ? ` ${loose.join("; ")}` : ""}`, "error");
        const first = root.querySelector("[aria-invalid=true]") || root.querySelector("[data-has-problems]");
        first?.scrollIntoView({ block: "center" });
      } else {
        showError(statusEl, err);
        if (err.code === "workflow_name_taken" || err.field === "name") {
          name.setAttribute("aria-invalid", "true");
          name.focus();
        }
      }
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  $("#save-form").addEventListener("submit", (event) => {
    event.preventDefault();
    save(false);
  });
  $("#save-version").addEventListener("click", () => save(true));

  // -- run ------------------------------------------------------------------------------------

  $("#run-files").addEventListener("change", (event) => {
    const el = event.target;
    if (!el.dataset.runInput) return;
    chosen[el.dataset.runInput] = el.multiple ? [...el.selectedOptions].map((o) => o.value) : el.value;
    idempotencyKey = null;
    requote();
  });
  $("#reuse").addEventListener("change", () => { idempotencyKey = null; });

  $("#upload").addEventListener("change", async (event) => {
    const input = event.target;
    const file = input.files[0];
    if (!file) return;
    const status = $("#upload-status");
    status.textContent = `Uploading ${file.name}…`;
    status.dataset.kind = "";
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const response = await fetch("/v1/files", {
        method: "POST", body: form, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
      });
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(response.status, data?.error?.code, data?.error?.message || `the upload failed (${response.status})`);
      files.unshift(data);
      // The new file goes to the first run input that takes its kind and has none yet.
      for (const [name, spec] of Object.entries(inputsOf())) {
        const kind = isObj(spec) ? spec.kind : "any";
        if (kind !== "any" && kind !== data.kind) continue;
        if (isObj(spec) && spec.list) {
          chosen[name] = [...(chosen[name] || []), data.id];
          break;
        }
        if (!chosen[name]) {
          chosen[name] = data.id;
          break;
        }
      }
      status.textContent = `Uploaded ${data.filename || data.id} (${data.kind}).`;
      status.dataset.kind = "ok";
      input.value = "";
      renderAll();
      requote();
    } catch (err) {
      status.textContent = `${file.name}: ${err.message}`;
      status.dataset.kind = "error";
    }
  });

  $("#run-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#run");
    const statusEl = $("#run-status");
    button.disabled = true;
    say(statusEl, "");
    idempotencyKey = idempotencyKey || faktry.uid();
    const reuse = $("#reuse").checked;
    try {
      let run;
      if (workflow && !dirty()) {
        const body = { inputs: runInputs(), reuse };
        if (shownVersion !== workflow.version) body.version = shownVersion;
        run = await api("POST", `/v1/workflows/${encodeURIComponent(workflow.id)}/runs`, body, { "Idempotency-Key": idempotencyKey });
      } else {
        run = await api("POST", "/v1/workflow-runs", { graph, inputs: runInputs(), reuse }, { "Idempotency-Key": idempotencyKey });
      }
      location.assign(`/workflow-runs/${encodeURIComponent(run.id)}`);
    } catch (err) {
      const problems = problemsOf(err);
      if (problems) {
        const loose = showProblems(problems);
        say(statusEl, `Not started, nothing held: ${err.message}.${loose.length ? ` ${loose.join("; ")}` : ""}`, "error");
      } else {
        showError(statusEl, err);
      }
      button.disabled = false;
    }
  });

  // -- this workflow's runs ---------------------------------------------------------------------

  let runsCursor = null;
  async function loadRuns(first) {
    if (!workflow) return;
    const params = new URLSearchParams({ limit: "10" });
    if (!first && runsCursor) params.set("cursor", runsCursor);
    const page = await api("GET", `/v1/workflows/${encodeURIComponent(workflow.id)}/runs?${params}`);
    const list = $("#runs");
    if (first) list.replaceChildren();
    for (const run of page.data) {
      list.append(h("li", { dataset: { runId: run.id, status: run.status } },
        h("a", { href: `/workflow-runs/${encodeURIComponent(run.id)}` }, run.id), " ",
        h("span", { class: "badge", "data-status": run.status }, run.status), " ",
        h("span", { class: "help" }, `v${run.version ?? "–"} · ${faktry.when(run.created_at)} · ${credits(run.cost.charged ?? 0)} credits`)));
    }
    runsCursor = page.next_cursor;
    $("#more-runs").hidden = !runsCursor;
    $("#runs-section").hidden = !list.children.length;
  }
  $("#more-runs").addEventListener("click", () => loadRuns(false).catch((err) => showError(alertEl, err)));

  // -- start ------------------------------------------------------------------------------------

  try {
    const id = root.dataset.workflowId;
    const [doc, modelList, fileList, templateList, saved] = await Promise.all([
      api("GET", "/v1/openapi.json"),
      api("GET", "/v1/models"),
      api("GET", "/v1/files?limit=100"),
      root.dataset.template ? api("GET", "/v1/workflow-templates") : null,
      id ? api("GET", `/v1/workflows/${encodeURIComponent(id)}${root.dataset.version ? `?version=${encodeURIComponent(root.dataset.version)}` : ""}`) : null,
    ]);
    models = modelList.data;
    files = fileList.data;
    const submission = resolve(doc, doc.components.schemas.JobSubmission);
    for (const ref of submission.oneOf) {
      const schema = resolve(doc, ref);
      types[schema.properties.type.const] = {
        description: schema.description,
        input: faktry.formInput(resolve(doc, schema.properties.input)),
        params: resolve(doc, schema.properties.params),
      };
    }
    if (saved) {
      graph = saved.graph;
      $("#wf-name").value = saved.name;
      $("#wf-description").value = saved.description || "";
      showWorkflow(saved);
      shownVersion = root.dataset.version ? Number(root.dataset.version) : saved.version;
      versionsNote();
      runNote();
    } else if (templateList) {
      const template = templateList.data.find((t) => t.id === root.dataset.template);
      if (template) {
        graph = template.graph;
        $("#wf-name").value = template.name;
        $("#wf-description").value = template.description;
        $("#editor-title").textContent = `New workflow from “${template.name}”`;
      } else {
        say(alertEl, "There is no such template; this is a new, empty workflow.", "error");
      }
    }
    renderAll();
    changed(false);
  } catch (err) {
    showError(alertEl, err);
  }
});
