// One job, live: status, progress and queue position from GET /v1/jobs/{id}, read again on
// each event of the job's stream (or polled where streams are cut) until the job ends, then its outputs with a preview and a download link. No reload is ever needed.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, credits, bytes, preview } = faktry;
  const id = $("#job").dataset.jobId;
  const DONE = ["succeeded", "failed", "canceled"];
  const cancel = $("#job-cancel");
  let shown = false;

  function render(job) {
    $("#job-type").textContent = job.model ? `${job.type} · ${job.model}` : job.type;
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
      ? `${credits(cost.charged)} credits charged`
      : `${credits(cost.held)} credits held (estimate ${credits(cost.estimated)})`;
    cancel.hidden = DONE.includes(job.status) || job.cancel_requested;
    if (job.error) say($("#job-error"), `${job.error.message || "the job failed"} (${job.error.code})`, "error");
    if (DONE.includes(job.status) && !shown) {
      shown = true;
      outputs(job);
    }
  }

  function outputs(job) {
    const list = $("#outputs");
    const roots = job.outputs.filter((f) => !f.root_id || f.root_id === f.id);
    fill(list, roots.map((file) => h("li", { class: "output", dataset: { fileId: file.id, kind: file.kind } },
      h("h3", {}, file.name),
      file.kind === "playlist"
        ? h("p", { class: "help" }, `HLS playlist with ${file.file_count || 1} files; play it with an HLS player.`)
        : preview(file),
      h("p", {},
        h("a", { href: file.url, download: file.filename || file.name, class: "button" }, "Download"),
        " ", h("span", { class: "help" }, `${file.content_type}, ${bytes(file.total_size || file.size)}`)))));
    $("#outputs-empty").hidden = roots.length > 0;
    if (!roots.length && job.status === "succeeded") $("#outputs-empty").textContent = "This job has no files; its result is below.";
    if (job.status !== "succeeded") $("#outputs-empty").textContent = "This job ended without outputs.";
    const result = job.result || {};
    if (Object.keys(result).length) {
      $("#result").hidden = false;
      $("#result-json").textContent = JSON.stringify(result, null, 2);
    }
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
    render(job);
    return !DONE.includes(job.status);
  });
});
