// One video project's editor: the project's scenes in order (moved with their buttons, or
// dragged by their handle), each with its script, a picture or clip from the library (shown
// beside it) or a prompt to make one, a duration and a transition; the format, length,
// brand, voice and music; saving through PATCH /v1/projects; and rendering: the price
// first, then the render started and followed live until its video plays in the page.
// Inputs are named by the API's field paths ("scenes.1.duration"), so a refused field's
// error finds its input.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, credits, preview, uid } = faktry;
  const editor = $("#project-editor");
  const projectId = editor.dataset.projectId;
  const path = `/v1/projects/${encodeURIComponent(projectId)}`;
  const TRANSITIONS = editor.dataset.transitions.split(",");
  const LIMITS = {
    scenes: Number(editor.dataset.maxScenes),
    script: Number(editor.dataset.maxScript),
    prompt: Number(editor.dataset.maxPrompt),
    duration: Number(editor.dataset.defaultDuration),
    volume: Number(editor.dataset.defaultVolume),
    transition: Number(editor.dataset.defaultTransition),
  };
  const form = $("#project-form");
  const scenesEl = $("#scenes");
  const saveStatus = $("#save-status");
  const alertBox = $("#project-status");
  const renderError = $("#render-error");
  const DONE = ["succeeded", "failed", "canceled"];
  const FINISHED_STEPS = ["succeeded", "reused", "skipped"];

  let media = []; // the library's pictures and clips
  let tracks = []; // the library's audio
  const models = { speech: [], image: [], video: [], music: [] };
  let dirty = false;
  let dragged = null;
  let stopWatching = null;

  const field = (name) => form.querySelector(`[name="${CSS.escape(name)}"]`);
  const numberOf = (value) => (String(value).trim() === "" ? null : Number(value));
  const fileLabel = (f) => `${f.filename || f.id} (${f.kind})`;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function options(select, choices, chosen, missing = "A file no longer in the library") {
    // choices: [value, label] pairs after the select's first (empty) option.
    const first = select.options[0];
    fill(select, first, choices.map(([value, label]) => h("option", { value }, label)));
    if (chosen && !choices.some(([value]) => value === chosen)) select.append(h("option", { value: chosen }, missing));
    select.value = chosen || "";
  }

  // -- a scene --------------------------------------------------------------------------------

  function control(li, tag, key, label, attrs = {}) {
    const el = h(tag, { dataset: { key }, ...attrs });
    const labelEl = h("label", {}, label);
    el.labelEl = labelEl;
    li.controls.push(el);
    return [labelEl, el];
  }

  function modelChoices(kind) {
    return models[kind].map((m) => [m.id, m.id]);
  }

  function sceneItem(scene = {}) {
    const li = h("li", { class: "project-scene", dataset: { sceneId: scene.id || "" } });
    li.controls = [];
    const fromLibrary = !scene.media?.prompt;
    const title = h("h3", {}, "Scene");
    const handle = h("span", { class: "project-handle", draggable: "true", title: "Drag to move this scene", "aria-hidden": "true" }, "⠿");
    const up = h("button", { type: "button", class: "secondary small", dataset: { move: "-1" } }, "Up");
    const down = h("button", { type: "button", class: "secondary small", dataset: { move: "1" } }, "Down");
    const remove = h("button", { type: "button", class: "secondary small" }, "Remove");

    const [scriptLabel, script] = control(li, "textarea", "script", "Script (narration)", { rows: 3, maxlength: LIMITS.script });
    script.value = scene.script || "";
    const [sourceLabel, source] = control(li, "select", "source", "Picture or clip");
    source.append(h("option", { value: "library" }, "From the library"), h("option", { value: "prompt" }, "Made from a prompt"));
    source.value = fromLibrary ? "library" : "prompt";
    const [fileLabelEl, file] = control(li, "select", "media.file_id", "Library file");
    file.append(h("option", { value: "" }, "Choose a picture or clip"));
    options(file, media.map((f) => [f.id, fileLabel(f)]), scene.media?.file_id);
    const shown = h("div", { class: "project-preview" });
    const [promptLabel, prompt] = control(li, "textarea", "media.prompt", "Prompt", { rows: 2, maxlength: LIMITS.prompt });
    prompt.value = scene.media?.prompt || "";
    const [kindLabel, kind] = control(li, "select", "media.kind", "Make a");
    kind.append(h("option", { value: "image" }, "picture (image)"), h("option", { value: "video" }, "clip (video)"));
    kind.value = scene.media?.kind || "image";
    const [modelLabel, model] = control(li, "select", "media.model", "Model");
    model.append(h("option", { value: "" }, "The default"));
    options(model, modelChoices(kind.value), scene.media?.model, "A model no longer offered");
    const [durationLabel, duration] = control(li, "input", "duration", "Duration (seconds)",
      { type: "number", min: "0.5", max: "120", step: "0.5", inputmode: "decimal" });
    duration.value = scene.duration ?? LIMITS.duration;
    const [transitionLabel, transition] = control(li, "select", "transition.type", "Transition into the next scene");
    TRANSITIONS.forEach((t) => transition.append(h("option", { value: t }, t)));
    transition.value = scene.transition?.type || "cut";
    const [fadeLabel, fade] = control(li, "input", "transition.duration", "Transition length (seconds)",
      { type: "number", min: "0", max: "2", step: "0.1", inputmode: "decimal" });
    fade.value = scene.transition?.type && scene.transition.type !== "cut" ? scene.transition.duration : LIMITS.transition;

    const libraryBox = h("div", { class: "project-media", dataset: { source: "library" } }, fileLabelEl, file, shown);
    const promptBox = h("div", { class: "project-media", dataset: { source: "prompt" } },
      promptLabel, prompt, h("div", { class: "project-row" }, h("div", {}, kindLabel, kind), h("div", {}, modelLabel, model)));
    const fadeBox = h("div", {}, fadeLabel, fade);
    li.append(
      h("div", { class: "project-scene-head" }, handle, title, h("span", { class: "project-scene-buttons" }, up, down, remove)),
      scriptLabel, script, sourceLabel, source, libraryBox, promptBox,
      h("div", { class: "project-row" }, h("div", {}, durationLabel, duration), h("div", {}, transitionLabel, transition), fadeBox));

    li.refresh = () => {
      const library = source.value === "library";
      libraryBox.hidden = !library;
      promptBox.hidden = library;
      fadeBox.hidden = transition.value === "cut";
      const picked = media.find((f) => f.id === file.value);
      if (shown.dataset.fileId !== (picked?.id || "")) {
        shown.dataset.fileId = picked?.id || "";
        fill(shown, picked ? preview(picked, { thumb: true }) : h("p", { class: "help" }, file.value ? "Not in the library any more." : "No file chosen."));
      }
    };
    li.renumber = () => {
      const siblings = [...scenesEl.children];
      const i = siblings.indexOf(li);
      title.textContent = `Scene ${i + 1}`;
      li.dataset.index = String(i);
      for (const el of li.controls) {
        const key = el.dataset.key;
        // "source" is the page's own choice, not part of the project.
        el.name = key === "source" ? `scene-source-${i}` : `scenes.${i}.${key}`;
        el.id = `scene-${i}-${key.replace(".", "-")}`;
        el.labelEl.htmlFor = el.id;
      }
      up.disabled = i === 0;
      down.disabled = i === siblings.length - 1;
      up.setAttribute("aria-label", `Move scene ${i + 1} up`);
      down.setAttribute("aria-label", `Move scene ${i + 1} down`);
      remove.setAttribute("aria-label", `Remove scene ${i + 1}`);
      handle.title = `Drag to move scene ${i + 1}`;
    };
    kind.addEventListener("change", () => options(model, modelChoices(kind.value), model.value, "A model no longer offered"));
    li.addEventListener("change", li.refresh);
    for (const button of [up, down]) {
      button.addEventListener("click", () => {
        moveScene(li, [...scenesEl.children].indexOf(li) + Number(button.dataset.move));
        // The button stays under the keyboard's focus, unless it cannot move further.
        (button.disabled ? (button === up ? down : up) : button).focus();
      });
    }
    remove.addEventListener("click", () => {
      li.remove();
      renumber();
      edited();
      $("#add-scene").focus();
    });
    handle.addEventListener("dragstart", (event) => {
      dragged = li;
      li.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", li.dataset.index);
      event.dataTransfer.setDragImage(li, 16, 16);
    });
    handle.addEventListener("dragend", () => {
      li.classList.remove("dragging");
      scenesEl.querySelectorAll(".drop-target").forEach((el) => el.classList.remove("drop-target"));
      dragged = null;
    });
    li.addEventListener("dragover", (event) => {
      if (!dragged || dragged === li) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      li.classList.add("drop-target");
    });
    li.addEventListener("dragleave", (event) => {
      if (!li.contains(event.relatedTarget)) li.classList.remove("drop-target");
    });
    li.addEventListener("drop", (event) => {
      if (!dragged || dragged === li) return;
      event.preventDefault();
      li.classList.remove("drop-target");
      // Dropped on a scene, the dragged scene takes its place.
      moveScene(dragged, [...scenesEl.children].indexOf(li));
    });
    return li;
  }

  function moveScene(li, to) {
    const siblings = [...scenesEl.children];
    const from = siblings.indexOf(li);
    if (to < 0 || to >= siblings.length || to === from) return;
    const rest = siblings.filter((el) => el !== li);
    scenesEl.insertBefore(li, rest[to] || null);
    renumber();
    edited();
    say(saveStatus, `Scene moved to place ${to + 1}; not saved yet.`);
  }

  function renumber() {
    [...scenesEl.children].forEach((li) => li.renumber());
    $("#scenes-empty").hidden = scenesEl.children.length > 0;
    lengthNote();
  }

  function addScene(scene) {
    const li = sceneItem(scene);
    scenesEl.append(li);
    li.refresh();
    renumber();
    return li;
  }

  function collectScene(li) {
    const value = (key) => li.querySelector(`[data-key="${key}"]`).value;
    const scene = li.dataset.sceneId ? { id: li.dataset.sceneId } : {};
    scene.script = value("script");
    if (value("source") === "library") {
      // No file chosen yet: a scene without a picture, which the API says whether it takes.
      scene.media = value("media.file_id") ? { file_id: value("media.file_id") } : null;
    } else {
      scene.media = { prompt: value("media.prompt"), kind: value("media.kind") };
      if (value("media.model")) scene.media.model = value("media.model");
    }
    scene.duration = numberOf(value("duration"));
    const type = value("transition.type");
    scene.transition = { type, duration: type === "cut" ? 0 : numberOf(value("transition.duration")) };
    return scene;
  }

  function lengthNote() {
    const total = [...scenesEl.children].reduce((sum, li) => sum + (Number(li.querySelector('[data-key="duration"]').value) || 0), 0);
    const target = numberOf($("#project-target").value);
    const n = scenesEl.children.length;
    $("#length-note").textContent = `${plural(n, "scene")} adding up to ${Math.round(total * 10) / 10} s`
      + (target ? ` of a ${target} s target` : "") + "; narration longer than its scene lengthens it.";
  }

  // -- music and voice --------------------------------------------------------------------------

  function musicSource() {
    return form.querySelector('input[name="music-source"]:checked').value;
  }

  function musicFields() {
    const source = musicSource();
    $("#music-library-fields").hidden = source !== "library";
    $("#music-prompt-fields").hidden = source !== "prompt";
    $("#music-volume-fields").hidden = source === "none";
    const track = tracks.find((f) => f.id === $("#music-file").value);
    const box = $("#music-preview");
    if (box.dataset.fileId !== (track?.id || "")) {
      box.dataset.fileId = track?.id || "";
      fill(box, track ? preview(track) : null);
    }
  }

  function voiceChoices() {
    const chosen = models.speech.find((m) => m.id === $("#voice-model").value);
    const voices = chosen?.params?.voice?.enum || [];
    fill($("#voice-choices"), voices.map((v) => h("option", { value: v })));
    $("#voice-voice").placeholder = chosen?.params?.voice?.default ? `the model's default (${chosen.params.voice.default})` : "the model's default";
  }

  // -- load, show and save ----------------------------------------------------------------------

  function show(p) {
    $("#project-name").value = p.name;
    $("#project-idea").value = p.idea || "";
    $("#project-description").value = p.description || "";
    $("#project-style").value = p.style?.notes || "";
    $("#project-format").value = p.format;
    $("#project-target").value = p.target_seconds ?? "";
    options($("#project-brand"), brands.map((b) => [b.id, b.name]), p.brand_id, "A brand deleted since");
    options($("#voice-model"), models.speech.map((m) => [m.id, m.id]), p.voice?.model, "A model no longer offered");
    $("#voice-voice").value = p.voice?.voice || "";
    voiceChoices();
    const music = p.music;
    const source = !music ? "none" : music.file_id ? "library" : "prompt";
    form.querySelector(`input[name="music-source"][value="${source}"]`).checked = true;
    options($("#music-file"), tracks.map((f) => [f.id, fileLabel(f)]), music?.file_id);
    $("#music-prompt").value = music?.prompt || "";
    options($("#music-model"), models.music.map((m) => [m.id, m.id]), music?.model, "A model no longer offered");
    $("#music-volume").value = music?.volume ?? LIMITS.volume;
    musicFields();
    fill(scenesEl);
    p.scenes.forEach((scene) => addScene(scene));
    renumber();
    $("#project-title").textContent = `Project ${p.name}`;
    dirty = false;
  }

  function collect() {
    const source = musicSource();
    const volume = numberOf($("#music-volume").value);
    let music = null;
    if (source === "library") music = { file_id: $("#music-file").value || null, volume };
    if (source === "prompt") {
      music = { prompt: $("#music-prompt").value, volume };
      if ($("#music-model").value) music.model = $("#music-model").value;
    }
    const voiceModel = $("#voice-model").value;
    const voiceName = $("#voice-voice").value.trim();
    return {
      name: $("#project-name").value,
      idea: $("#project-idea").value,
      description: $("#project-description").value,
      // Merged into the project's style: caption settings made through the API stay.
      style: { notes: $("#project-style").value },
      format: $("#project-format").value,
      target_seconds: numberOf($("#project-target").value),
      brand_id: $("#project-brand").value || null,
      voice: { model: voiceModel || null, voice: voiceName || null },
      music,
      scenes: [...scenesEl.children].map(collectScene),
    };
  }

  function markField(name) {
    // "scenes[1].media.file_id" is that scene's file picker, "scenes[1].media" its choice of
    // picture, "scenes[2]" the scene's first control.
    const parts = (name || "").replace(/\[(\d+)\]/g, ".$1").split(".");
    while (parts.length) {
      const joined = parts.join(".");
      const scene = /^scenes\.(\d+)(\.media)?$/.exec(joined);
      const el = field(joined)
        || (scene ? scenesEl.children[Number(scene[1])]?.querySelector(scene[2] ? '[data-key="source"]' : "[data-key]") : null);
      if (el) {
        el.setAttribute("aria-invalid", "true");
        el.focus();
        return;
      }
      parts.pop();
    }
  }

  function clearMarks() {
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    say(alertBox, "");
  }

  async function save() {
    clearMarks();
    try {
      const saved = await api("PATCH", path, collect());
      show(saved);
      return saved;
    } catch (err) {
      showError(alertBox, err);
      markField(err.field);
      throw err;
    }
  }

  function edited() {
    dirty = true;
    $("#quote-box").hidden = true;
  }

  form.addEventListener("input", edited);
  form.addEventListener("change", (event) => {
    edited();
    if (event.target.name === "music-source" || event.target.id === "music-file") musicFields();
    if (event.target.id === "voice-model") voiceChoices();
  });
  form.addEventListener("input", lengthNote);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#save");
    button.disabled = true;
    say(saveStatus, "");
    try {
      const saved = await save();
      say(saveStatus, `Saved ${saved.name}.`, "ok");
    } catch (err) {
      // Shown where it belongs by save().
    } finally {
      button.disabled = false;
    }
  });
  $("#add-scene").addEventListener("click", () => {
    if (scenesEl.children.length >= LIMITS.scenes) {
      say(alertBox, `A project has at most ${LIMITS.scenes} scenes.`, "error");
      return;
    }
    const li = addScene({});
    edited();
    li.querySelector("textarea").focus();
  });
  $("#delete").addEventListener("click", async () => {
    if (!confirm("Delete this project? Its rendered videos stay in your library.")) return;
    try {
      await api("DELETE", path);
      location.assign("/projects");
    } catch (err) {
      showError(alertBox, err);
    }
  });

  // -- render -----------------------------------------------------------------------------------

  const quoteButton = $("#quote-button");
  const renderButton = $("#render-button");

  quoteButton.addEventListener("click", async () => {
    quoteButton.disabled = true;
    say(renderError, "");
    $("#quote-box").hidden = true;
    try {
      if (dirty) {
        await save();
        say(saveStatus, "Saved before pricing.", "ok");
      }
      const quote = await api("POST", `${path}/quote`);
      const price = quote.price ?? quote.total ?? 0;
      const quoteEl = $("#quote");
      quoteEl.textContent = `Price: ${credits(price)} credits`
        + (quote.available !== undefined ? ` (you have ${credits(quote.available)})` : "");
      quoteEl.dataset.kind = quote.sufficient === false ? "error" : "ok";
      if (quote.sufficient === false) quoteEl.textContent += " — not enough credits; buy more under Credits";
      renderButton.disabled = quote.sufficient === false;
      $("#quote-box").hidden = false;
      renderButton.focus();
    } catch (err) {
      if (!alertBox.hidden) say(renderError, "Not saved: fix what is marked in the form first.", "error");
      else showError(renderError, err);
      markField(err.field);
    } finally {
      quoteButton.disabled = false;
    }
  });

  $("#quote-cancel").addEventListener("click", () => {
    $("#quote-box").hidden = true;
    quoteButton.focus();
  });

  renderButton.addEventListener("click", async () => {
    renderButton.disabled = true;
    say(renderError, "");
    try {
      const started = await api("POST", `${path}/render`, undefined, { "Idempotency-Key": uid() });
      $("#quote-box").hidden = true;
      const runId = started.run_id || started.render?.run_id || started.id;
      watch(runId);
    } catch (err) {
      showError(renderError, err);
      markField(err.field);
    } finally {
      renderButton.disabled = false;
    }
  });

  // What each node of a project's render does, for the progress line (scenes count from 1).
  function describe(name) {
    const scene = name.match(/^(narrate|media)_(\d+)$/);
    if (scene) return `${scene[1] === "narrate" ? "narration" : "picture"} for scene ${scene[2]}`;
    if (name === "music") return "music";
    if (name === "render") return "the video";
    return name;
  }

  const jobProgress = new Map();

  async function progressOf(run) {
    const nodes = Object.entries(run.nodes || {});
    const renderNode = run.nodes?.render ? "render" : nodes.at(-1)?.[0];
    const others = nodes.filter(([name]) => name !== renderNode);
    const finished = (node) => node.steps.length > 0 && node.steps.every((st) => FINISHED_STEPS.includes(st.status));
    const running = nodes.filter(([, node]) => node.status === "running").map(([name]) => name);
    const queued = nodes.filter(([, node]) => node.status === "queued").map(([name]) => name);
    let rendered = 0;
    const last = run.nodes?.[renderNode];
    if (last && finished(last)) rendered = 1;
    else if (last?.status === "running" && last.steps[0]?.job_id) {
      const jobId = last.steps[0].job_id;
      try {
        const job = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
        jobProgress.set(jobId, job.progress || 0);
      } catch (err) {
        // The run's own state is enough; the bar moves on the next poll.
      }
      rendered = jobProgress.get(jobId) || 0;
    }
    const before = others.length ? others.filter(([, node]) => finished(node)).length / others.length : 1;
    // Making the narration and pictures is the first part; the render the rest.
    const share = others.length ? 0.5 : 0;
    const value = run.status === "succeeded" ? 1 : share * before + (1 - share) * rendered;
    return { value, running, queued, rendered };
  }

  function renderStatus(status) {
    // One render at a time from here: another can be priced once this one is over.
    quoteButton.disabled = !DONE.includes(status);
    const state = $("#render-state");
    state.textContent = status;
    state.dataset.status = status;
    $("#render").dataset.status = status;
  }

  async function tick(runId) {
    const run = await api("GET", `/v1/workflow-runs/${encodeURIComponent(runId)}`);
    renderStatus(run.status);
    const progress = await progressOf(run);
    const bar = $("#render-bar");
    bar.value = Math.round(progress.value * 100);
    bar.textContent = `${bar.value}%`;
    const step = $("#render-step");
    if (run.status === "succeeded") step.textContent = "Done.";
    else if (progress.running.length) {
      step.textContent = `Working on ${progress.running.map(describe).join(", ")}`
        + (progress.running.includes("render") ? ` (${Math.round(progress.rendered * 100)}%)` : "") + ".";
    } else if (progress.queued.length) {
      step.textContent = `Waiting for a free worker: ${progress.queued.map(describe).join(", ")}.`;
    } else if (!DONE.includes(run.status)) step.textContent = "Starting…";
    else step.textContent = "";
    if (run.status === "succeeded") {
      await showResult(run);
      return false;
    }
    if (DONE.includes(run.status)) {
      const failed = Object.entries(run.nodes || {}).flatMap(([name, node]) =>
        node.steps.filter((st) => st.error).map((st) => `${describe(name)}: ${st.error.message || st.error.code}`));
      say(renderError, `The render ${run.status}${failed.length ? ` — ${failed.join("; ")}` : run.error ? ` (${run.error.code})` : ""}.`, "error");
      return false;
    }
    return true;
  }

  function watch(runId) {
    if (stopWatching) stopWatching();
    $("#render-result").hidden = true;
    $("#render-progress").hidden = false;
    $("#render-run").href = `/workflow-runs/${encodeURIComponent(runId)}`;
    renderStatus("queued");
    stopWatching = faktry.live("/v1/events/stream", () => tick(runId), {
      wanted: (event) => event.run_id === runId || Boolean(event.job_id),
    });
  }

  async function showResult(run) {
    // The project says which of the render's files is the video and which the captions.
    const fresh = await api("GET", path);
    let videoId = fresh.render?.run_id === run.id ? fresh.render.video_file_id : null;
    let srtId = fresh.render?.run_id === run.id ? fresh.render.subtitles_file_id : null;
    if (!videoId) [videoId, srtId] = run.nodes?.render?.steps?.[0]?.outputs || [];
    if (!videoId) return;
    const video = await api("GET", `/v1/files/${encodeURIComponent(videoId)}`);
    const player = $("#render-video");
    if (player.dataset.fileId !== video.id) {
      player.dataset.fileId = video.id;
      player.src = video.url;
    }
    $("#render-download").href = video.url;
    $("#render-download").setAttribute("download", video.filename || "video.mp4");
    const srt = $("#render-srt");
    srt.hidden = !srtId;
    if (srtId) {
      const captions = await api("GET", `/v1/files/${encodeURIComponent(srtId)}`);
      srt.href = captions.url;
      srt.setAttribute("download", captions.filename || "captions.srt");
    }
    $("#render-result").hidden = false;
  }

  // -- start ------------------------------------------------------------------------------------

  let brands = [];

  async function all(url) {
    return (await api("GET", url)).data;
  }

  async function load() {
    const [p, brandList, images, clips, audio, speech, image, video, music] = await Promise.all([
      api("GET", path),
      all("/v1/brands?limit=100"),
      all("/v1/files?kind=image&limit=100"),
      all("/v1/files?kind=video&limit=100"),
      all("/v1/files?kind=audio&limit=100"),
      all("/v1/models?type=speech.synthesize"),
      all("/v1/models?type=image.generate"),
      all("/v1/models?type=video.generate"),
      all("/v1/models?type=music.generate"),
    ]);
    brands = brandList;
    media = [...images, ...clips].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    tracks = audio;
    Object.assign(models, { speech, image, video, music });
    $("#library-empty").hidden = media.length > 0;
    $("#music-empty").hidden = tracks.length > 0;
    show(p);
    const last = p.render;
    if (last?.run_id) {
      watch(last.run_id);
    }
  }
  load().catch((err) => showError(alertBox, err));
});
