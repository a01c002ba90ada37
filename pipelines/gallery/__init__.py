"""The prompt gallery: succeeded generation jobs a person chose to show the public, each with
its prompt, category, display name, model and parameters, and a copy of its output that
faktry serves at a public URL keyed by the entry's own id (docs/gallery.md).

``models`` holds the table, ``store`` publishes, reads, lists, unpublishes and removes
entries, and exports and deletes them with an account.
"""
