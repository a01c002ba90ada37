"""Pages for video projects: the list of a person's projects (with a form to start one), and
one project's editor: its scenes in order (each a script, a picture or clip from the library
or a prompt to make one, a duration and a transition into the next), the format, length,
brand, voice and music; saving; and rendering, with the price shown before anything is
held, the render's progress live, and the finished video playing in the page.

The server renders the shell and decides only who may see it: another tenant's project is a
404 page, exactly like one that does not exist (the lookup is the API's own, under the
person's tenant). The page's script reads and saves the project through ``/v1/projects``
and follows its render through ``/v1/workflow-runs``.
"""

from __future__ import annotations

from typing import Any

from faktry.errors import NotFound
from pipelines.projects import schema, store
from web.auth import db
from web.pages import blueprint, person, render

#: How the editor names each format (`schema.FORMATS` holds them all).
FORMAT_NAMES = {"9:16": "vertical", "16:9": "landscape", "1:1": "square"}


def _formats() -> list[tuple[str, str]]:
    return [
        (value, " ".join(filter(None, (value, FORMAT_NAMES.get(value), f"({width}x{height})"))))
        for value, (width, height) in schema.FORMATS.items()
    ]


@blueprint.get("/projects")
@person
def projects_list() -> Any:
    return render(
        "projects.html",
        title="Projects",
        active="projects",
        formats=_formats(),
        default_format=schema.DEFAULT_FORMAT,
        limits=schema,
    )


@blueprint.get("/projects/<project_id>")
@person
def project_edit(project_id: str) -> Any:
    try:
        project = store.get(db(), project_id)
    except NotFound:
        return render("error.html", title="Not found", message="There is no such project."), 404
    return render(
        "projects_edit.html",
        title=f"Project {project.name}",
        active="projects",
        project_id=project.id,
        formats=_formats(),
        transitions=schema.TRANSITIONS,
        limits=schema,
    )
