"""Running the Claude Code CLI as the agent step: its command line, its environment and credentials,
its memory per chat thread, and the stream of events it prints."""
