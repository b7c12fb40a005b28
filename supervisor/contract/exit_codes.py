"""Named exit codes for the supervisor and its workers, so operators and tests read them the same way."""

from enum import IntEnum


class SupervisorExit(IntEnum):
    OK = 0  # stopped on request, every message accounted for
    CONFIG = 2  # a configuration variable is missing or malformed
    CRASHED = 3  # the main loop failed unexpectedly
    FORCED = 4  # a second stop signal: work was ended at once, unfinished messages handed back


class WorkerExit(IntEnum):
    OK = 0  # the pipeline ran and a result was reported (the result may still say a step failed)
    CONFIG = 2
    BAD_INPUT = 4  # the command handed to the worker could not be read
    LEASE_LOST = 5  # another container holds the workspace now: the worker wrote nothing more, reported nothing
    NOT_STARTED = 126  # no worker process could be started (EAGAIN, EMFILE): the supervisor's own code
    INTERRUPTED = 130  # stopped by SIGINT (128 + 2)
    TERMINATED = 143  # stopped by SIGTERM (128 + 15), e.g. because the supervisor died
