// The projects list: each project with its format, scenes and last render, and a form that
// creates a project and opens it in the editor.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, $, when, jsonForm, pagedList, deleteButton } = faktry;
  const list = $("#projects");
  const status = $("#projects-status");
  const more = $("#more");

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
    deleteButton(remove, { question: `Delete the project ${project.name}? Its rendered videos stay in your library.`, path: `/v1/projects/${encodeURIComponent(project.id)}`,
      entry: li, name: project.name, status, list, empty: $("#projects-empty") });
    return li;
  }

  jsonForm($("#new-project"), {
    path: "/v1/projects",
    collect: (form) => ({ name: form.elements.name.value, format: form.elements.format.value }),
    done: (project) => location.assign(`/projects/${encodeURIComponent(project.id)}`),
  });
  pagedList({ path: "/v1/projects", list, more, empty: $("#projects-empty"), status, item })();
});
