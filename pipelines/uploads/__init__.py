"""Uploads that arrive in pieces, for files too large or networks too shaky for one
``POST /v1/files``: one concept (the ``uploads`` table, `models.Upload`) behind two ways in.

- **tus 1.0** (``/v1/uploads/tus``, web/api/uploads.py), on every storage backend: the client
  creates the upload, then sends its bytes in PATCHes it can resume from the offset a HEAD
  reports, after any interruption, from any web process. The bytes live in storage as they
  arrive (`storage.growing`: a partial file on local storage, an S3 multipart upload and a
  small tail on S3).
- **Direct to S3** (``POST /v1/uploads`` when storage is S3): the client PUTs parts to
  presigned URLs, so the bytes never pass through faktry, then asks faktry to complete it.
  On local storage the same call creates a tus upload instead, so one client works anywhere.

Both reserve the declared size at creation, expire after ``upload_expiry_hours``, and end in
one completion shared with ``POST /v1/files`` (`service`: sniff, probe, move, record). The
scheduler expires what is abandoned and aborts what a crash left (`sweep`).
"""
