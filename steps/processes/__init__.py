"""Running external commands: `shell` (every command, through sh) and `deps` (npm install when the lockfile changed)."""
