"""Account mails: a durable outbox (`outbox`), an SMTP sender (`sender`), their words
(`templates`) and the mails themselves with the tokens their links carry (`notices`).

Like webhooks, a mail is a row written in the transaction that decided to send it, kicked
to the ``mail`` queue once it commits and found by the scheduler's sweep if the kick was
lost or the server refused it. With no SMTP host configured, mail is kept in the outbox
and written to the log instead of sent (see docs/operations.md).
"""
