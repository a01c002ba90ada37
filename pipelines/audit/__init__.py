"""The audit log: an account's security events, for its owners and admins
(docs/api.md, "Audit log"). ``models`` holds the table; ``log`` records, lists and exports."""
