"""Helpers with no knowledge of commands or queues, used by the supervisor and the workers alike:
process trees (`proctree`), logging (`logs`), atomic state files (`files`)."""
