"""How this container shares the input queue with others, if at all.

`SingleContainer` (LEASE_TABLE unset, `single.py`): it alone reads the queue and runs every command it
receives. `Claims` (LEASE_TABLE set, `claims.py`) is the same door for several containers:
- `lease_table.py`: the workspace leases in DynamoDB (one item per workspace; the one place that reads
  and writes their schema, for the supervisor and for the worker's fence, steps/fence.py);
- `ownership.py`: which leases this container holds, taken, renewed, given up;
- `roster.py`: which containers are alive, with their inboxes (a dead one's inbox is adopted, no live one's);
- `inboxes.py`: this container's inbox and those it adopted, where commands for its workspaces are forwarded;
- `keeper.py`: the thread that renews, reports lost leases and sweeps what dead containers left;
- `cli.py`: `bin/lease-table`.

Words: a *lease* is a workspace's lease in the table, never an SQS message's visibility
(supervisor/visibility.py); an *owner* is a container holding leases; its *inbox* is its SQS queue.
"""

from supervisor.contract.config import Config
from supervisor.sharing.single import REQUEUE_SECONDS, Admit, SharingUnavailable, SingleContainer

__all__ = ["REQUEUE_SECONDS", "Admit", "SharingUnavailable", "SingleContainer", "sharing_for"]


def sharing_for(config: Config) -> type[SingleContainer]:
    """Several containers on one queue (LEASE_TABLE set), or this one alone."""
    if not config.lease_table:
        return SingleContainer
    from supervisor.sharing.claims import Claims  # the DynamoDB side only where it is used

    return Claims
