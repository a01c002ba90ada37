// One job, live: status, progress and queue position from GET /v1/jobs/{id}, read again on
// each event of the job's stream (or polled where streams are cut) until the job ends, then
// its outputs with a preview and a download link. No reload is ever needed.
//
// Outputs are shown under the names they download as (their source's name and the job:
// "clip-480p.mp4"); an HLS output plays in the page (natively where the browser can, else
// with the vendored hls.js), and a multi-file output downloads whole as one zip.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, bytes, preview } = faktry;
  const root = $("#job");
  const id = root.dataset.jobId;
  const labels = JSON.parse($("#catalog-labels").textContent || "{}");
  const DONE = ["succeeded", "failed", "canceled"];
  const cancel = $("#job-cancel");
  let shown = false;
  let source; // the job's input file, once read (null: none, or no longer there)

  // Credits on pages, always with two decimals; the API counts millicredits.
  const money = faktry.money;

  // The name an output downloads as (pipelines/catalog.py output_name, which the server
  // sends as the download's file name).
  // An HLS output in a video element: the browser's own player where it has one (Safari,
  // iOS), else hls.js, loaded only then.
  let hlsLoading = null;
  function loadHls() {
    if (window.Hls) return Promise.resolve(window.Hls);
    hlsLoading = hlsLoading || new Promise((ok, fail) => {
      const script = h("script", { src: root.dataset.hlsSrc });
      script.addEventListener("load", () => ok(window.Hls));
      script.addEventListener("error", () => fail(new Error("the HLS player could not be loaded")));
      document.head.append(script);
    });
    return hlsLoading;
  }

  function hlsPlayer(file, label) {
    const video = h("video", { controls: true, preload: "metadata", class: "preview", "aria-label": label, "data-player": "" });
    const status = h("p", { class: "help", role: "status" });
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = file.url;
      video.dataset.player = "native";
    } else {
      loadHls().then((Hls) => {
        if (!Hls || !Hls.isSupported()) {
          say(status, "This browser cannot play HLS; download the zip and play it with an HLS player.", "info");
          return;
        }
        // No worker: the pages' Content-Security-Policy allows none from blob: URLs.
        const player = new Hls({ enableWorker: false });
        player.on(Hls.Events.ERROR, (event, data) => {
          if (data.fatal) say(status, `The stream could not be played (${data.details}).`, "error");
        });
        player.loadSource(file.url);
        player.attachMedia(video);
        video.dataset.player = "hls.js";
      }, (err) => say(status, err.message, "error"));
    }
    return h("div", {}, video, status);
  }

  function render(job) {
    const name = labels.job_types?.[job.type]?.name;
    const model = job.model ? ` · ${labels.models?.[job.model] || job.model}` : "";
    fill($("#job-type"), name ? `${name}${model} ` : `${job.type}${model} `,
      h("code", { class: "help" }, job.model ? `${job.type} · ${job.model}` : job.type));
    const asked = $("#job-request");
    if (!asked.textContent) asked.textContent = JSON.stringify({ input: job.input, params: job.params, metadata: job.metadata }, null, 2);
    const status = $("#job-status");
    status.textContent = job.cancel_requested && !DONE.includes(job.status) ? `${job.status} (canceling)` : job.status;
    status.dataset.status = job.status;
    const bar = $("#job-progress");
    bar.value = job.status === "succeeded" ? 1 : job.progress || 0;
    bar.setAttribute("aria-valuetext", `${Math.round(bar.value * 100)}%`);
    // Before the workers: jobs the fair order admits first (0: admitted, waiting for a
    // worker). At a provider: its own queue position.
    const upstream = job.upstream?.queue_position;
    let position = "–";
    if (job.status === "queued" && job.queue_position !== null && job.queue_position !== undefined) {
      position = job.queue_position === 0 ? "waiting for a worker" : `${job.queue_position} ahead`;
    } else if (upstream !== null && upstream !== undefined && !DONE.includes(job.status)) {
      position = upstream === 0 ? "next at the provider" : `${upstream} ahead at the provider`;
    }
    $("#job-position").textContent = position;
    const cost = job.cost;
    $("#job-cost").textContent = cost.charged !== null
      ? `${money(cost.charged)} charged`
      : `${money(cost.held)} held (estimate ${money(cost.estimated)})`;
    cancel.hidden = DONE.includes(job.status) || job.cancel_requested;
    if (job.error) say($("#job-error"), `${job.error.message || "the job failed"} (${job.error.code})`, "error");
    if (DONE.includes(job.status) && !shown) {
      shown = true;
      outputs(job);
    }
  }

  async function readSource(job) {
    const fileId = job.input?.file_id;
    if (source !== undefined || !fileId) {
      source = source ?? null;
      return;
    }
    try {
      source = await api("GET", `/v1/files/${encodeURIComponent(fileId)}`);
      fill($("#job-source"), h("a", { href: `/library#file-${source.id}` }, source.filename || source.id));
    } catch (err) {
      source = null;
      $("#job-source").textContent = "no longer in your library";
    }
  }

  async function outputs(job) {
    await readSource(job);
    const list = $("#outputs");
    const roots = job.outputs.filter((f) => !f.root_id || f.root_id === f.id);
    fill(list, roots.map((file) => {
      const name = faktry.outputName(labels, job, file, file.name, source?.filename);
      const whole = file.file_count > 1 || file.kind === "playlist";
      const zip = `/v1/files/${encodeURIComponent(file.id)}/content?format=zip`;
      return h("li", { class: "output", dataset: { fileId: file.id, kind: file.kind } },
        h("h3", {}, name, " ", h("code", { class: "help" }, file.name)),
        file.kind === "playlist" ? hlsPlayer(file, name) : preview(file),
        h("p", {},
          whole
            ? h("a", { href: zip, class: "button", download: "" }, "Download all (zip)")
            : h("a", { href: file.url, download: name, class: "button" }, "Download"),
          " ", h("span", { class: "help" },
            whole ? `${file.file_count || 1} files, ${bytes(file.total_size || file.size)}` : `${file.content_type}, ${bytes(file.size)}`),
          file.expires_at ? h("span", { class: "help expires" }, ` · removed on ${faktry.when(file.expires_at)}`) : null));
    }));
    $("#outputs-empty").hidden = roots.length > 0;
    if (!roots.length && job.status === "succeeded") $("#outputs-empty").textContent = "This job has no files; its result is below.";
    if (job.status !== "succeeded") $("#outputs-empty").textContent = "This job ended without outputs.";
    const result = job.result || {};
    if (Object.keys(result).length) {
      $("#result").hidden = false;
      $("#result-json").textContent = JSON.stringify(result, null, 2);
    }
  }

  // "Publish to gallery": offered (by the server) for generation jobs with a prompt, shown
  // once the job has succeeded.
  const publish = $("#publish");
  function offerPublishing(job) {
    if (publish) publish.hidden = job.status !== "succeeded";
  }
  if (publish) {
    faktry.jsonForm($("#publish-form"), {
      method: "POST",
      path: "/v1/gallery",
      collect: (f) => ({ job_id: id, category: f.category.value, display_name: f.display_name.value }),
      done: (entry, f) => {
        const status = $("#publish-status");
        fill(status, "Published: ", h("a", { href: entry.page_url, id: "published-link" }, "see it in the gallery"), ".");
        status.hidden = false;
        status.dataset.kind = "ok";
        f.querySelector("[type=submit]").disabled = true;
      },
    });
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      render(await api("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`));
    } catch (err) {
      showError($("#job-error"), err);
    } finally {
      cancel.disabled = false;
    }
  });

  // Read again whenever the job's event stream says something happened (polling instead
  // where streams are cut on the way).
  faktry.live(`/v1/jobs/${encodeURIComponent(id)}/events/stream`, async () => {
    const job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
    await readSource(job);
    render(job);
    offerPublishing(job);
    return !DONE.includes(job.status);
  });
});
