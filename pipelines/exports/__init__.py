"""Export archives: everything faktry keeps about an account, with the media files
themselves, as one zip built in the background and downloadable until it expires
(docs/api.md, "Export archive").

``models`` holds the table, ``archive`` writes the zip (streamed to a file, never whole in
memory), ``store`` requests, builds, reads, expires and deletes archives.
"""
