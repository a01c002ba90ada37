"""Workflows: named, versioned graphs of jobs, and their runs (see docs/workflows.md).

``graph`` checks and prices a graph, ``store`` keeps saved workflows, ``runs`` starts,
advances, cancels and retries runs, ``models`` holds the tables.
"""
