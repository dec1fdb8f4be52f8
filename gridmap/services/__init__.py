"""Use cases, one per module: what the CLI and the web layer call.  Services call the store (SQL)
and the domain (pure rules); they read files and settings so the domain does not have to."""
