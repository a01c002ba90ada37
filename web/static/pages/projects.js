// The projects list: each project with its format, scenes and last render, and a form that
// creates a project and opens it in the editor.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, say, showError, when, jsonForm } = faktry;
  const list = $("#projects");
  const status = $("#projects-status");
  const more = $("#more");
  let cursor = null;

  function item(project) {
    const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Delete ${project.name}` }, "Delete");
    const scenes = project.scenes.length;
    const render = project.render;
    const li = h("li", { class: "card", dataset: { projectId: project.id } },
      h("h3", {}, h("a", { href: `/projects/${encodeURIComponent(project.id)}` }, project.name)),
      project.idea ? h("p", { class: "project-idea" }, project.idea) : null,
      h("p", {}, `${project.format} · ${scenes} scene${scenes === 1 ? "" : "s"}`,
        render ? [" · last render ", h("span", { class: "badge", "data-status": render.status }, render.status)] : ""),
      h("p", { class: "help" }, `Updated ${when(project.updated_at)}`),
      remove);
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete the project ${project.name}? Its rendered videos stay in your library.`)) return;
      remove.disabled = true;
      try {
        await api("DELETE", `/v1/projects/${encodeURIComponent(project.id)}`);
        li.remove();
        say(status, `Deleted ${project.name}.`);
        status.focus();
        $("#projects-empty").hidden = list.children.length > 0;
      } catch (err) {
        showError(status, err);
        remove.disabled = false;
      }
    });
    return li;
  }

  async function load(next) {
    const params = new URLSearchParams({ limit: "25" });
    if (next) params.set("cursor", next);
    const page = await api("GET", `/v1/projects?${params}`);
    page.data.forEach((p) => list.append(item(p)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    $("#projects-empty").hidden = list.children.length > 0;
  }

  jsonForm($("#new-project"), {
    path: "/v1/projects",
    collect: (form) => ({ name: form.elements.name.value, format: form.elements.format.value }),
    done: (project) => location.assign(`/projects/${encodeURIComponent(project.id)}`),
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load(cursor);
    } catch (err) {
      showError(status, err);
    } finally {
      more.disabled = false;
    }
  });
  load(null).catch((err) => showError(status, err));
});
