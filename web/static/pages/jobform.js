// The job form, built from the API's own description: each job type's JSON Schema in
// /v1/openapi.json (input and params), the model catalog in /v1/models for AI jobs, and the
// price from POST /v1/jobs/quote once the required fields are filled. Names for people
// (job types, presets, models) come from the catalog, embedded in the page; the machine
// names stay visible for API users, and a curl and a Python snippet show exactly what the
// form would submit.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, h, $, fill, say, bytes } = faktry;
  const form = $("#job-form");
  const typeSelect = $("#job-type");
  const modelSelect = $("#model");
  const alert = form.querySelector("[role=alert]");
  const quoteEl = $("#quote");
  const labels = JSON.parse($("#catalog-labels").textContent || "{}");
  const PROVIDERS = { openai: "OpenAI", fal: "fal", bfl: "Black Forest Labs", local: "faktry" };
  let types = {};
  let models = [];
  let files = [];
  let idempotencyKey = null;

  // Credits on pages, always with two decimals; the API counts millicredits.
  const money = faktry.money;

  // Fields that apply only to some choices: shown (and submitted) only when their rule holds
  // for the values of the other fields. A "choice" is a form-only control that is never sent.
  const RULES = {
    "video.thumbnail": {
      choices: {
        at: {
          label: "Pick the frame",
          after: "sprite",
          options: [["fraction", "At a point of the video (a fraction of its length)"], ["seconds", "At a time (seconds)"]],
        },
      },
      show: {
        at: (v) => !v.sprite,
        at_fraction: (v) => !v.sprite && v.at !== "seconds",
        at_seconds: (v) => !v.sprite && v.at === "seconds",
        format: (v) => !v.sprite,
        frames: (v) => Boolean(v.sprite),
        columns: (v) => Boolean(v.sprite),
      },
    },
    "image.resize": { show: { quality: (v) => v.format !== "png" } },
    "video.concat": { show: { transition: (v) => Number(v.crossfade || 0) > 0 } },
  };

  const resolve = (doc, schema) => {
    if (schema && schema.$ref) return resolve(doc, schema.$ref.split("/").slice(1).reduce((o, k) => o[k], doc));
    return schema;
  };

  function label(name) {
    const text = name.replace(/_ids?$/, (m) => (m === "_ids" ? "s" : "")).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  const typeName = (type) => labels.job_types?.[type]?.name || type;
  const modelName = (id) => labels.models?.[id] || id;

  function fileOption(f) {
    return h("option", { value: f.id }, `${f.filename || f.id} (${f.kind}, ${bytes(f.size)})`);
  }

  function enumText(group, name, value) {
    if (group === "params" && name === "preset" && labels.presets?.[value]) return `${labels.presets[value]} (${value})`;
    return String(value);
  }

  // One form control for one JSON Schema property; the name is "input.x" or "params.x".
  function control(group, name, prop, required) {
    const id = `${group}-${name}`;
    const full = `${group}.${name}`;
    const help = [];
    if (prop.description && !(group === "params" && name === "preset")) help.push(prop.description);
    const common = { id, name: full, "data-group": group, "data-key": name, required: required || null };
    let el;
    if (prop["x-faktry-kinds"]) {
      const kinds = prop["x-faktry-kinds"];
      const options = files.filter((f) => kinds.includes(f.kind));
      if (prop.type === "array") {
        el = h("select", { ...common, multiple: true, size: Math.min(6, Math.max(2, options.length)), "data-type": "array" },
          options.map(fileOption));
        help.push("Choose several, in order (Ctrl or ⌘ to add one).");
      } else {
        // No file is chosen for the person: a wrong one would be paid for.
        el = h("select", common, h("option", { value: "" }, required ? "Choose a file…" : "None"), options.map(fileOption));
      }
      if (!options.length) help.push(`Upload a file of kind ${kinds.join(" or ")} in the library first.`);
      const preset = form.dataset.presetFile;
      if (group === "input" && name === "file_id" && preset && options.some((f) => f.id === preset)) el.value = preset;
    } else if (prop.type === "array" && prop.items?.enum) {
      const chosen = prop.default || [];
      const boxes = prop.items.enum.map((v) => h("div", { class: "check" },
        h("input", { type: "checkbox", id: `${id}-${v}`, value: String(v), checked: chosen.includes(v) }),
        h("label", { for: `${id}-${v}` }, String(v))));
      el = h("fieldset", { ...common, "data-type": "array" }, h("legend", {}, label(name)), boxes);
      const helpId = `${id}-help`;
      if (help.length) el.setAttribute("aria-describedby", helpId);
      return h("div", { class: "field", "data-field": full }, el,
        help.length ? h("p", { class: "help", id: helpId }, help.join(" ")) : null,
        h("p", { class: "message", id: `${id}-error`, "data-kind": "error", hidden: true }));
    } else if (prop.enum) {
      el = h("select", common,
        required || prop.default !== undefined ? null : h("option", { value: "" }, "Default"),
        prop.enum.map((v) => h("option", { value: String(v) }, enumText(group, name, v))));
      if (required && prop.default === undefined && group === "params" && name === "preset") {
        el.value = prop.enum.includes("mp4_720p") ? "mp4_720p" : String(prop.enum[0]);
      }
      if (prop.default !== undefined) el.value = String(prop.default);
      if (prop.type === "integer" || prop.type === "number") el.dataset.type = prop.type;
    } else if (prop.type === "boolean") {
      el = h("input", { ...common, type: "checkbox", checked: prop.default === true });
      return h("div", { class: "field check", "data-field": full }, el, h("label", { for: id }, label(name)),
        h("p", { class: "message", id: `${id}-error`, "data-kind": "error", hidden: true }));
    } else if (prop.type === "integer" || prop.type === "number") {
      el = h("input", {
        ...common, type: "number", inputmode: prop.type === "integer" ? "numeric" : "decimal",
        min: prop.minimum, max: prop.maximum,
        step: prop.multipleOf || (prop.type === "integer" ? 1 : "any"),
        placeholder: prop.default !== undefined ? `default ${prop.default}` : null,
        "data-type": prop.type,
      });
      if (prop.minimum !== undefined || prop.maximum !== undefined) {
        help.push(`From ${prop.minimum ?? "–"} to ${prop.maximum ?? "–"}.`);
      }
    } else if ((prop.maxLength || 0) > 300) {
      el = h("textarea", { ...common, rows: 4, maxlength: prop.maxLength });
    } else {
      el = h("input", { ...common, maxlength: prop.maxLength, pattern: prop.pattern,
        placeholder: prop.default !== undefined ? `default ${prop.default}` : null });
    }
    const helpId = `${id}-help`;
    if (help.length) el.setAttribute("aria-describedby", helpId);
    return h("div", { class: "field", "data-field": full },
      h("label", { for: id }, label(name), required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null),
      el,
      help.length ? h("p", { class: "help", id: helpId }, help.join(" ")) : null,
      h("p", { class: "message", id: `${id}-error`, "data-kind": "error", hidden: true }));
  }

  // A form-only radio group (time vs fraction): never submitted, it only decides what shows.
  function choice(key, spec) {
    const id = `choice-${key}`;
    return h("fieldset", { class: "field", id, "data-field": `choice.${key}`, "data-choice": key },
      h("legend", {}, spec.label),
      spec.options.map(([value, text], i) => h("div", { class: "check" },
        h("input", { type: "radio", name: id, id: `${id}-${value}`, value, checked: i === 0 }),
        h("label", { for: `${id}-${value}` }, text))));
  }

  function fields(container, group, schema, skip = []) {
    const legend = container.querySelector("legend");
    fill(container, legend);
    const required = schema?.required || [];
    // Required fields first, then the rest in the schema's order.
    const props = Object.entries(schema?.properties || {})
      .filter(([name]) => !skip.includes(name))
      .sort(([a], [b]) => Number(required.includes(b)) - Number(required.includes(a)));
    const choices = group === "params" ? RULES[typeSelect.value]?.choices || {} : {};
    for (const [name, prop] of props) {
      container.append(control(group, name, prop, required.includes(name)));
      for (const [key, spec] of Object.entries(choices)) if (spec.after === name) container.append(choice(key, spec));
    }
    container.hidden = props.length === 0;
  }

  function paramsSchema(type) {
    const schema = types[type].params;
    if (!schema.oneOf) return schema;
    return schema.oneOf.find((variant) => variant.properties.model.const === modelSelect.value) || { properties: {} };
  }

  // Show only the fields whose rule holds for the current values.
  function applyRules() {
    const rules = RULES[typeSelect.value]?.show || {};
    const values = {};
    for (const el of form.querySelectorAll("[data-group=params]")) values[el.dataset.key] = read(el);
    for (const box of form.querySelectorAll("[data-choice]")) {
      values[box.dataset.choice] = box.querySelector("input:checked")?.value;
    }
    for (const [key, rule] of Object.entries(rules)) {
      const wrap = form.querySelector(`[data-field="params.${key}"]`) || form.querySelector(`[data-field="choice.${key}"]`);
      if (wrap) wrap.hidden = !rule(values);
    }
  }

  function read(el) {
    if (el.dataset.type === "array") {
      if (el.tagName === "SELECT") return Array.from(el.selectedOptions, (o) => o.value);
      return Array.from(el.querySelectorAll("input:checked"), (box) => box.value);
    }
    if (el.type === "checkbox") return el.checked;
    if (el.value === "") return undefined;
    if (el.dataset.type === "integer") return Number.parseInt(el.value, 10);
    if (el.dataset.type === "number") return Number(el.value);
    return el.value;
  }

  function renderType() {
    const type = typeSelect.value;
    say(alert, ""); // a refusal of another job type no longer applies
    const spec = types[type];
    const summary = labels.job_types?.[type]?.summary || spec.description || "";
    fill($("#job-type-help"), summary, " ", h("code", {}, type));
    fields($("#input-fields"), "input", spec.input);
    const generative = Boolean(spec.params.oneOf);
    $("#model-field").hidden = !generative;
    if (generative) {
      const choices = models.filter((m) => m.job_types.includes(type));
      const here = choices.filter((m) => m.runs_on === m.provider);
      const standIn = choices.filter((m) => m.runs_on !== m.provider);
      const option = (m) => h("option", { value: m.id },
        `${modelName(m.id)} (${m.id})${m.runs_on !== m.provider ? " — offline stand-in here" : ""}`);
      fill(modelSelect,
        here.length ? h("optgroup", { label: "Runs here" }, here.map(option)) : null,
        standIn.length ? h("optgroup", { label: "No provider key here: runs on the offline stand-in" }, standIn.map(option)) : null);
      const previous = modelSelect.dataset.previous;
      const preferred = labels.default_model?.[type];
      if (choices.some((m) => m.id === previous)) modelSelect.value = previous;
      else if (preferred && choices.some((m) => m.id === preferred)) modelSelect.value = preferred;
    }
    renderParams();
  }

  function renderParams() {
    const type = typeSelect.value;
    const model = models.find((m) => m.id === modelSelect.value);
    modelSelect.dataset.previous = modelSelect.value;
    const help = $("#model-help");
    if (model) {
      const parts = [model.description, " ", h("code", {}, model.id)];
      if (model.runs_on !== model.provider) {
        const standIn = modelName(labels.stand_in?.[type] || "");
        parts.push(h("strong", { class: "stand-in" },
          ` This deployment has no ${PROVIDERS[model.provider] || model.provider} key: jobs with this model run on the offline stand-in (${standIn}), which makes a placeholder, not this model's output.`));
      }
      fill(help, parts);
    } else {
      fill(help);
    }
    fields($("#param-fields"), "params", paramsSchema(type), ["model"]);
    applyRules();
    changed();
  }

  function body() {
    const out = { type: typeSelect.value, input: {}, params: {} };
    if (!$("#model-field").hidden && modelSelect.value) out.params.model = modelSelect.value;
    for (const el of form.querySelectorAll("[data-group]")) {
      if (el.closest("[hidden]")) continue; // a field that does not apply is not sent
      const value = read(el);
      if (value === undefined) continue;
      out[el.dataset.group][el.dataset.key] = value;
    }
    return out;
  }

  // Required fields still empty (shown ones only): no price is asked for before they are filled.
  function missing() {
    return Array.from(form.querySelectorAll("[data-group][required]")).filter((el) => {
      if (el.closest("[hidden]")) return false;
      const value = read(el);
      return value === undefined || (Array.isArray(value) && value.length === 0);
    });
  }

  // -- errors in words ----------------------------------------------------------------------

  function fieldOf(err) {
    if (!err.field) return null;
    const name = err.field.includes(".") ? err.field : `params.${err.field}`;
    // "input.file_ids.1" belongs to the "input.file_ids" control.
    const [group, key] = name.split(".");
    return form.querySelector(`[data-group="${group}"][data-key="${CSS.escape(key || "")}"]`);
  }

  function schemaOf(el) {
    if (!el) return {};
    const spec = types[typeSelect.value];
    const schema = el.dataset.group === "input" ? spec.input : paramsSchema(typeSelect.value);
    return schema?.properties?.[el.dataset.key] || {};
  }

  // A refusal as a sentence about the field. The API says what is wrong in words after the
  // field's path ("params.width must be at least 1"); the page names the field by its label.
  function sentence(err, el) {
    const message = err.message || "";
    const prop = schemaOf(el);
    const name = el ? label(el.dataset.key) : "This";
    const both = /^give (.+), not both$/.exec(message);
    if (err.code === "conflicting_fields" && both) {
      return `Give ${both[1].split(" or ").map((s) => label(s.trim())).join(" or ")}, not both.`;
    }
    if (/missing required/.test(message)) return el?.tagName === "SELECT" ? `Choose ${name.toLowerCase()}.` : `${name} is required.`;
    if (err.code === "unknown_field") return `${name} is not a setting of this choice.`;
    if (/must be one of: /.test(message) && el?.tagName === "SELECT") return `Choose one of the listed values for ${name.toLowerCase()}.`;
    if (/is not in the expected form$/.test(message)) return `${name} is not in the expected form${prop.pattern?.includes("#") ? " (like #FFFFFF)" : ""}.`;
    const field = err.field || err.details?.field;
    if (field && message.startsWith(`${field} `)) return `${name} ${message.slice(field.length + 1)}.`;
    // Already words (a check of faktry's own): drop a leading "params.x: ".
    return message.replace(/^(input|params)(\.[\w.]+)?: /, "");
  }

  function clearErrors() {
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    form.querySelectorAll(".field > .message").forEach((p) => say(p, ""));
  }

  function showFieldError(el, text, focus) {
    const wrap = el.closest(".field");
    const box = wrap?.querySelector(":scope > .message");
    if (!box) return false;
    say(box, text, "error");
    el.setAttribute("aria-invalid", "true");
    const described = (el.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (!described.includes(box.id)) el.setAttribute("aria-describedby", [...described, box.id].join(" "));
    if (focus) el.focus();
    return true;
  }

  // An API refusal: on its field when it has one, else above the button. A refused submit
  // also says, above the button, which field to fix (read out as an alert).
  function showRefusal(err, { focus }) {
    const el = fieldOf(err);
    const text = sentence(err, el);
    if (el && !el.closest("[hidden]") && showFieldError(el, text, focus)) {
      if (focus) say(alert, `Not submitted: ${label(el.dataset.key).toLowerCase()} needs a change (see above).`, "error");
      return;
    }
    say(alert, text, "error");
  }

  // -- price and snippets ---------------------------------------------------------------------

  let quoteTimer = null;
  let quoteSeq = 0;
  function changed() {
    idempotencyKey = null; // a changed form is a new job
    snippets();
    clearTimeout(quoteTimer);
    quoteSeq += 1;
    const empty = missing();
    if (empty.length) {
      quoteEl.textContent = "Price: fill in the fields marked * to see the price.";
      quoteEl.dataset.kind = "info";
      return;
    }
    quoteTimer = setTimeout(async () => {
      const seq = ++quoteSeq;
      try {
        const quote = await api("POST", "/v1/jobs/quote", body());
        if (seq !== quoteSeq) return;
        clearErrors();
        quoteEl.textContent = `Price: ${money(quote.price)} (you have ${money(quote.available)})`;
        quoteEl.dataset.kind = quote.sufficient ? "ok" : "error";
        if (!quote.sufficient) quoteEl.textContent += " — not enough credits; buy more under Credits";
      } catch (err) {
        if (seq !== quoteSeq) return;
        clearErrors();
        quoteEl.textContent = "Price: –";
        quoteEl.dataset.kind = "info";
        showRefusal(err, { focus: false });
      }
    }, 250);
  }

  const quoteShell = (s) => `'${s.replace(/'/g, "'\\''")}'`;
  function snippets() {
    const payload = body();
    const json = JSON.stringify(payload, null, 2);
    const origin = location.origin;
    $("#snippet-curl").textContent = [
      `curl -X POST ${origin}/v1/jobs \\`,
      `  -H "Authorization: Bearer $FAKTRY_API_KEY" \\`,
      `  -H "Content-Type: application/json" \\`,
      `  -d ${quoteShell(JSON.stringify(payload))}`,
    ].join("\n");
    const python = json.replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
    $("#snippet-python").textContent = [
      "import os",
      "",
      "import requests",
      "",
      "job = requests.post(",
      `    "${origin}/v1/jobs",`,
      '    headers={"Authorization": f"Bearer {os.environ[\'FAKTRY_API_KEY\']}"},',
      `    json=${python.replace(/\n/g, "\n    ")},`,
      "    timeout=30,",
      ")",
      "job.raise_for_status()",
      'print(job.json()["id"])',
    ].join("\n");
  }

  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        say($("#snippet-status"), "Copied.", "ok");
      } catch (err) {
        say($("#snippet-status"), "Copying is not allowed here; select the text and copy it.", "error");
      }
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    say(alert, "");
    clearErrors();
    const empty = missing();
    if (empty.length) {
      empty.forEach((el, i) => showFieldError(el, el.tagName === "SELECT" ? `Choose ${label(el.dataset.key).toLowerCase()}.` : `${label(el.dataset.key)} is required.`, i === 0));
      say(alert, `Not submitted: fill in ${empty.map((el) => label(el.dataset.key).toLowerCase()).join(", ")} (see above).`, "error");
      return;
    }
    button.disabled = true;
    // The same key for retries of this form: a double click or a lost answer submits once.
    idempotencyKey = idempotencyKey || faktry.uid();
    try {
      const job = await api("POST", "/v1/jobs", body(), { "Idempotency-Key": idempotencyKey });
      location.assign(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      showRefusal(err, { focus: true });
      button.disabled = false;
    }
  });
  form.addEventListener("input", (event) => {
    if (event.target === typeSelect || event.target === modelSelect) return;
    applyRules();
    changed();
  });
  form.addEventListener("change", (event) => {
    if (event.target === typeSelect || event.target === modelSelect) return;
    applyRules();
    changed();
  });
  typeSelect.addEventListener("change", renderType);
  modelSelect.addEventListener("change", renderParams);

  try {
    const [doc, modelList, fileList] = await Promise.all([
      api("GET", "/v1/openapi.json"),
      api("GET", "/v1/models"),
      api("GET", "/v1/files?limit=100"),
    ]);
    models = modelList.data;
    files = fileList.data;
    // "Use in a job" on a file older than the newest 100 still preselects it.
    const wanted = form.dataset.presetFile;
    if (wanted && !files.some((f) => f.id === wanted)) {
      try {
        files.push(await api("GET", `/v1/files/${encodeURIComponent(wanted)}`));
      } catch (err) {
        say(alert, `That file is no longer in your library (${err.message}).`, "error");
      }
    }
    const submission = resolve(doc, doc.components.schemas.JobSubmission);
    for (const ref of submission.oneOf) {
      const schema = resolve(doc, ref);
      const type = schema.properties.type.const;
      types[type] = {
        description: schema.description,
        input: faktry.formInput(resolve(doc, schema.properties.input)),
        params: resolve(doc, schema.properties.params),
      };
    }
    fill(typeSelect, Object.keys(types).map((t) => h("option", { value: t }, `${typeName(t)} (${t})`)));
    // The job first offered fits the chosen file's kind; without one, the newest file's; with
    // an empty library, one that needs no file.
    const fits = (kind) => {
      const preferred = labels.default_job?.[kind];
      if (preferred && types[preferred]) return preferred;
      return Object.keys(types).find((t) =>
        Object.values(types[t].input.properties || {}).some((p) => (p["x-faktry-kinds"] || []).includes(kind)));
    };
    const preset = files.find((f) => f.id === form.dataset.presetFile);
    // "Use this prompt" in the gallery names the job type, the model and the prompt.
    const { presetType, presetModel, presetPrompt } = form.dataset;
    const start = presetType && types[presetType] ? presetType
      : preset ? fits(preset.kind) : files.length ? fits(files[0].kind) : types["image.generate"] ? "image.generate" : null;
    if (start) typeSelect.value = start;
    if (presetModel) modelSelect.dataset.previous = presetModel;
    renderType();
    // Submittable once the form is whole: a submit before would send a job half described,
    // and its refusal would be wiped by the form's own first rendering.
    form.querySelector("[type=submit]").disabled = false;
    const prompt = form.querySelector('[data-group="input"][data-key="prompt"]');
    if (presetPrompt && prompt) {
      prompt.value = presetPrompt;
      changed();
    }
  } catch (err) {
    faktry.showError(alert, err);
  }
});
