"""The relay's rules: accounts and sessions, rooms and posts, the queue link, the audit log."""
