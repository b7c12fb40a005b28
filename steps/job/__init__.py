"""Code we did not write (the agent, npm, the site's build) runs as a job: its own identity, its own sandbox."""
