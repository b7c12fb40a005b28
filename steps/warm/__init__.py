"""Warm builds (`BUILD_MODE=warm`): Astro's programmatic `build()` in a long-lived server per workspace.

The supervisor starts one manager (steps/warm/manager.py, ours, root); it keeps a build server
(steps/warm/server.mjs, running the site's own Astro) per checkout, as an identity of its own and in
the job's sandbox, stopped (SIGSTOP) between builds. A worker's build step asks the manager over a
unix socket (steps/warm/client.py) and builds cold whenever the warm path cannot answer.
"""
