// The media library: storage against the quota, uploads with progress, files with filters.
// An empty library invites the first upload; a finished upload offers the job that fits its
// kind; an output links back to its source and the job that made it, and an original lists
// what was made from it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, bytes, when, preview } = faktry;
  const list = $("#files");
  const status = $("#files-status");
  const more = $("#more");
  let cursor = null;
  let maxUpload = null;
  const labels = JSON.parse($("#catalog-labels").textContent || "{}");
  const jobsSeen = new Map(); // job id -> the job (its type and input), read once

  function nextJob(file) {
    const type = labels.default_job?.[file.kind];
    if (!type) return null;
    const name = labels.job_types?.[type]?.name || type;
    return h("a", { href: `/jobs/new?file=${encodeURIComponent(file.id)}`, class: "button small", "data-next-job": type },
      `Next: ${name}`);
  }

  const filesSeen = new Map();
  async function fileById(id) {
    if (!filesSeen.has(id)) filesSeen.set(id, api("GET", `/v1/files/${encodeURIComponent(id)}`).catch(() => null));
    return filesSeen.get(id);
  }

  async function job(id) {
    if (!jobsSeen.has(id)) jobsSeen.set(id, api("GET", `/v1/jobs/${encodeURIComponent(id)}`).catch(() => null));
    return jobsSeen.get(id);
  }

  // An output names its source and job; the source's tile lists what was made from it.
  async function relate(file, li) {
    if (file.origin !== "output" || !file.job_id) return;
    const made = await job(file.job_id);
    if (!made) return;
    const typeName = labels.job_types?.[made.type]?.name || made.type;
    const sourceId = made.input?.file_id;
    const from = h("p", { class: "help made-by" }, "Made by ",
      h("a", { href: `/jobs/${encodeURIComponent(made.id)}` }, typeName));
    li.dataset.sourceId = sourceId || "";
    const source = sourceId ? list.querySelector(`li[data-file-id="${CSS.escape(sourceId)}"]`) : null;
    const sourceName = sourceId ? source?.dataset.name || (await fileById(sourceId))?.filename : null;
    const output = (made.outputs || []).find((o) => o.id === file.id);
    const shown = faktry.outputName(labels, made, file, output?.name, sourceName);
    li.dataset.name = shown;
    li.querySelector(".name").textContent = shown;
    const download = li.querySelector(".actions a[download]");
    if (download && !download.getAttribute("href").includes("format=zip")) download.setAttribute("download", shown);
    if (sourceId) {
      from.append(" from ", h("a", { href: `#file-${sourceId}` }, sourceName || "a file of yours"));
      if (source) {
        let derived = source.querySelector(".derived ul");
        if (!derived) {
          const box = h("details", { class: "derived" }, h("summary", {}, "Made from this"), h("ul", {}));
          source.querySelector(".actions").before(box);
          derived = box.querySelector("ul");
        }
        derived.append(h("li", {}, h("a", { href: `#file-${file.id}` }, li.dataset.name), ` (${typeName})`));
        derived.closest("details").querySelector("summary").textContent = `Made from this (${derived.children.length})`;
      }
    }
    li.querySelector(".name").after(from);
  }

  const MB = 2 ** 20;
  const SIZES = { small: [null, 10 * MB], medium: [10 * MB, 100 * MB], large: [100 * MB, null] };
  let generation = 0; // a changed filter makes answers to the old one stale

  async function refreshStorage() {
    const account = await api("GET", "/v1/account");
    const { used_bytes: used, reserved_bytes: reserved, quota_bytes: quota } = account.storage;
    $("#storage-text").textContent =
      `${bytes(used)} of ${bytes(quota)} used on the ${account.limits.tier} tier` +
      (reserved ? ` (${bytes(reserved)} reserved by running jobs)` : "");
    const bar = $("#storage-bar");
    bar.max = quota || 1;
    bar.value = Math.min(used + reserved, quota);
    maxUpload = account.limits.max_upload_bytes;
    $("#upload-limit").textContent = `Up to ${bytes(maxUpload)} a file on the ${account.limits.tier} tier.`;
  }

  function item(file) {
    const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Delete ${file.filename || file.id}` }, "Delete");
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete ${file.filename || file.id}? This cannot be undone.`)) return;
      remove.disabled = true;
      try {
        await api("DELETE", `/v1/files/${encodeURIComponent(file.id)}`);
        li.remove();
        empty();
        say(status, `Deleted ${file.filename || file.id}.`);
        status.focus(); // the button is gone: keep the keyboard where the news is
        refreshStorage();
      } catch (err) {
        showError(status, err);
        remove.disabled = false;
      }
    });
    const info = file.media || {};
    const facts = [file.kind, bytes(file.total_size || file.size)];
    if (info.width && info.height) facts.push(`${info.width}×${info.height}`);
    if (info.duration) facts.push(`${Number(info.duration).toFixed(1)} s`);
    // An audio player is interactive itself: it cannot sit inside the "open" link.
    const media = file.kind === "audio"
      ? h("div", { class: "tile-media" }, preview(file, { thumb: true }))
      : h("a", { href: file.url, class: "tile-media", "aria-label": `Open ${file.filename || file.id}` }, preview(file, { thumb: true }));
    const name = file.filename || file.name || file.id;
    const li = h("li", { class: "tile", id: `file-${file.id}`, dataset: { fileId: file.id, kind: file.kind, name } },
      media,
      h("p", { class: "name" }, file.filename || file.name || file.id),
      h("p", { class: "help" }, facts.join(" · "), h("br"), file.origin === "output" ? "output, " : "uploaded ", when(file.created_at)),
      // A tier that keeps outputs for a while says, beforehand, when this one goes.
      file.expires_at ? h("p", { class: "help expires" }, `Removed on ${when(file.expires_at)} (your plan keeps outputs for a limited time)`) : null,
      h("div", { class: "actions" },
        h("a", { href: `/jobs/new?file=${encodeURIComponent(file.id)}`, class: "button small" }, "Use in a job"),
        file.file_count > 1 || file.kind === "playlist"
          ? h("a", { href: `/v1/files/${encodeURIComponent(file.id)}/content?format=zip`, download: "", class: "button secondary small" }, "Download (zip)")
          : h("a", { href: file.url, download: file.filename || "", class: "button secondary small" }, "Download"),
        remove));
    return li;
  }

  // The filters, as the API's query: kind, origin and size are filtered by the server.
  function query() {
    const params = new URLSearchParams({ limit: "50" });
    if ($("#kind").value) params.set("kind", $("#kind").value);
    if ($("#origin").value) params.set("origin", $("#origin").value);
    const size = SIZES[$("#size").value];
    if (size && size[0] !== null) params.set("min_size", String(size[0]));
    if (size && size[1] !== null) params.set("max_size", String(size[1]));
    return params;
  }

  function visible(file) {
    const params = query();
    if (params.get("kind") && file.kind !== params.get("kind")) return false;
    if (params.get("origin") && file.origin !== params.get("origin")) return false;
    if (params.get("min_size") && file.size < Number(params.get("min_size"))) return false;
    return !(params.get("max_size") && file.size >= Number(params.get("max_size")));
  }

  async function load(reset) {
    if (reset) {
      generation += 1;
      cursor = null;
      fill(list);
    }
    const asked = generation;
    const params = query();
    if (cursor) params.set("cursor", cursor);
    more.disabled = true;
    try {
      const page = await api("GET", `/v1/files?${params}`);
      if (asked !== generation) return;
      const tiles = page.data.map((file) => [file, item(file)]);
      tiles.forEach(([, li]) => list.append(li));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty();
      await Promise.all(tiles.map(([file, li]) => relate(file, li)));
    } catch (err) {
      showError(status, err);
    } finally {
      more.disabled = false;
    }
  }

  // An empty library without filters invites the first upload; with filters, says none match.
  function empty() {
    const filtered = ["#kind", "#origin", "#size"].some((sel) => $(sel).value);
    const none = list.children.length === 0;
    $("#library-empty").hidden = !(none && !filtered);
    say(status, none && filtered ? "No files match." : "");
  }

  // Screen readers hear each upload's outcome once, not every progress step.
  const announce = (text) => {
    $("#upload-status").textContent = text;
  };

  // Uploads are resumable (the tus protocol, to faktry's own /v1/uploads/tus): the file goes
  // in chunks, and one that stops — a broken connection, a closed tab, a reload — resumes
  // from the last byte the server kept when the same file is chosen again.
  const CHUNK_BYTES = Number($("#dropzone").dataset.chunkBytes) || 16 * 1024 * 1024;
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const tusHeaders = () => ({ "X-CSRF-Token": csrf(), Accept: "application/json" });

  // A refusal's own words, from the JSON error faktry answers.
  function refusal(err) {
    const response = err?.originalResponse;
    if (!response) return null;
    try {
      return JSON.parse(response.getBody())?.error?.message || null;
    } catch (parseErr) {
      return null;
    }
  }

  function uploadRow(name) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${name}` });
    const note = h("span", { class: "help", "aria-hidden": "true" }, "starting…");
    const row = h("li", {}, h("span", { class: "name" }, name), bar, note);
    $("#uploads").append(row);
    return { row, bar, note };
  }

  function upload(file) {
    const { row, bar, note } = uploadRow(file.name);
    const refuse = (text) => {
      // A refusal shows only why: no progress bar beside it.
      bar.remove();
      note.textContent = text;
      note.dataset.kind = "error";
      row.dataset.state = "refused";
      announce(`${file.name}: ${text}`);
    };
    if (maxUpload !== null && file.size > maxUpload) {
      refuse(`too large: files of up to ${bytes(maxUpload)} can be uploaded here`);
      return Promise.resolve();
    }
    if (file.size === 0) {
      refuse("the file is empty");
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let fileId = null;
      const transfer = new tus.Upload(file, {
        endpoint: "/v1/uploads/tus",
        chunkSize: CHUNK_BYTES,
        retryDelays: [0, 1000, 3000, 5000, 10000],
        metadata: { filename: file.name, filetype: file.type || "" },
        headers: tusHeaders(),
        removeFingerprintOnSuccess: true,
        onUploadUrlAvailable() {
          row.dataset.uploadUrl = transfer.url;
        },
        onProgress(sent, total) {
          bar.value = sent / total;
          note.textContent = `${bytes(sent)} of ${bytes(total)}`;
          if (sent === total) {
            // The last byte is sent: the server now checks the file (probes it) before answering.
            bar.removeAttribute("value"); // indeterminate: no more bytes to count
            note.textContent = "processing: checking the file…";
            row.dataset.state = "processing";
          }
        },
        onAfterResponse(req, res) {
          fileId = res.getHeader("Faktry-File-Id") || fileId;
        },
        async onSuccess() {
          let body = null;
          try {
            body = await api("GET", `/v1/files/${encodeURIComponent(fileId)}`);
          } catch (err) {
            refuse(err.message || "the upload finished but the file could not be read");
            resolve();
            return;
          }
          bar.value = 1;
          note.textContent = "uploaded";
          note.dataset.kind = "ok";
          row.dataset.fileId = body.id;
          row.dataset.state = "uploaded";
          const next = nextJob(body);
          if (next) row.append(" ", next);
          if (visible(body)) list.prepend(item(body));
          empty();
          announce(`${file.name}: uploaded`);
          resolve();
        },
        onError(err) {
          const said = refusal(err);
          refuse(said || "the connection broke; what was sent is kept: choose the file again to resume");
          if (!said) row.dataset.state = "interrupted";
          resolve();
        },
      });
      // The same file chosen again (after a reload, or a broken connection) carries on.
      transfer.findPreviousUploads().then((previous) => {
        if (previous.length) {
          transfer.resumeFromPreviousUpload(previous[0]);
          note.textContent = "resuming…";
          row.dataset.resumed = "true";
        }
        transfer.start();
      });
    });
  }

  // Uploads this browser started and did not finish: said on arrival, with how far each got,
  // so that choosing the file again resumes it; or forgotten (the server lets go of it too).
  async function unfinished() {
    const stored = await tus.defaultOptions.urlStorage.findAllUploads().catch(() => []);
    for (const previous of stored) {
      const name = previous.metadata?.filename || "a file";
      let offset = null;
      try {
        const answer = await fetch(previous.uploadUrl, {
          method: "HEAD", credentials: "same-origin", headers: { "Tus-Resumable": "1.0.0" },
        });
        if (answer.ok) offset = Number(answer.headers.get("Upload-Offset"));
      } catch (err) {
        offset = null;
      }
      if (offset === null || Number.isNaN(offset)) {
        // Finished, expired or removed meanwhile: nothing to resume.
        await tus.defaultOptions.urlStorage.removeUpload(previous.urlStorageKey);
        continue;
      }
      const { row, bar, note } = uploadRow(name);
      row.dataset.state = "interrupted";
      bar.value = previous.size ? offset / previous.size : 0;
      note.textContent = `stopped at ${bytes(offset)} of ${bytes(previous.size)}: choose the file again to resume`;
      const forget = h("button", { type: "button", class: "secondary small" }, "Forget");
      forget.addEventListener("click", async () => {
        await fetch(previous.uploadUrl, {
          method: "DELETE", credentials: "same-origin", headers: { "Tus-Resumable": "1.0.0", ...tusHeaders() },
        }).catch(() => null);
        await tus.defaultOptions.urlStorage.removeUpload(previous.urlStorageKey);
        row.remove();
      });
      row.append(forget);
    }
  }

  async function uploadAll(files) {
    await ready; // the upload limit is known before anything is sent
    // A file chosen again to resume takes the place of its "stopped at" line.
    $("#uploads").querySelectorAll('li[data-state="interrupted"]').forEach((row) => {
      if (files.some((file) => file.name === row.querySelector(".name").textContent)) row.remove();
    });
    for (const file of files) await upload(file);
    refreshStorage().catch(() => {});
  }

  const zone = $("#dropzone");
  ["dragenter", "dragover"].forEach((name) =>
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadAll([...event.dataTransfer.files]);
  });
  $("#file-input").addEventListener("change", (event) => {
    uploadAll([...event.target.files]);
    event.target.value = "";
  });
  $("#filters").addEventListener("change", () => load(true));
  $("#filters").addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => load(false));

  const ready = refreshStorage().catch((err) => showError(status, err));
  load(true);
  unfinished().catch(() => {});
});
