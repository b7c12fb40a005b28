"""What the supervisor and its workers share, and all a worker may import from `supervisor`:
the command and its parsing, the configuration, the responses, the pipe protocol between them, exit
codes, error codes and step names. (General helpers both use live in `supervisor.common`.)"""
