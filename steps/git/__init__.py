"""Git in a checkout: the baked command, the ledger of what a checkout remembers, session stashes,
repair of broken states, the checkout lock, commit messages, and the remote (push, retry, conflict, pending)."""
