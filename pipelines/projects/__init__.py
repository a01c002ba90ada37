"""Video projects: from an idea to a finished, branded MP4 (see docs/projects.md).

A project is a name, an idea and a style, a format (16:9, 9:16 or 1:1), a target length,
an optional brand, a voice, optional music, and scenes in order: each a script (what the
narrator says), a picture or a clip (a library file, or a prompt to generate one), a
duration and a transition into the next.

``models`` holds the table, ``schema`` the JSON Schema of a project's body and its checks,
``store`` creates, reads, changes and deletes projects and reports their last render,
``compile`` turns a project into the workflow graph that renders it and the timeline
document its ``video.render`` step plays.
"""
