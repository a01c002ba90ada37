"""AI providers behind one small port (`base.Provider`), each with its vendor's real SDK or
HTTP API, and an offline ``local`` twin."""
