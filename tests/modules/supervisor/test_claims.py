"""Claims (supervisor/sharing/claims.py): what a container does with a command when several share the queue, on
moto's SQS and DynamoDB in this process. Pollers are stand-ins here; tests/e2e/test_containers.py runs
real supervisors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import boto3
import pytest
from helpers import ManualClock

from supervisor.contract.config import load_config
from supervisor.delivery import Delivery
from supervisor.events import Decided, LeasesLost
from supervisor.queues import Queues
from supervisor.sharing import claims as claims_module
from supervisor.sharing.claims import Claims
from supervisor.visibility import VisibilityKeeper

LEASE = 10.0
WORKSPACE = "acme/u1/site"


class StandInPoller:
    """Records which inbox it would poll; `empty_rounds` is set by the test."""

    def __init__(self, *_args, queue_url: str, **_kwargs):
        self.queue_url = queue_url
        self.empty_rounds = 0
        self.failures = 0

    def start(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


@pytest.fixture
def sqs(dynamodb):  # the dynamodb fixture's mock_aws covers SQS too
    return boto3.client("sqs", region_name="us-west-2")


@pytest.fixture
def input_url(sqs) -> str:
    return sqs.create_queue(QueueName="edit-input")["QueueUrl"]


@pytest.fixture(autouse=True)
def stand_in_pollers(monkeypatch):
    monkeypatch.setattr(claims_module, "Poller", StandInPoller)


def container(name: str, sqs, dynamodb, input_url: str, root: Path) -> tuple[Claims, ManualClock, list]:
    env = {
        "INPUT_QUEUE_URL": input_url,
        "WORKSPACE_PATH": str(root),
        "REPO_URL": "/srv/site.git",
        "LEASE_TABLE": "leases",
        "LEASE_SECONDS": str(LEASE),
    }
    config = load_config(env)
    queues = Queues(config, sqs)
    leases = VisibilityKeeper(queues, visibility_seconds=config.visibility_timeout_seconds)
    posted: list = []
    clock = ManualClock()
    claims = Claims(
        config,
        queues,
        Delivery(queues, leases),
        leases,
        posted.append,
        dynamodb=dynamodb,
        owner=name,
        clock=clock,
    )
    claims.open_inbox()
    return claims, clock, posted


def admit(claims: Claims, workspace: str, message, *, here: bool, free: bool):
    """What the admission thread decides (run here, or None: forwarded or put back), in this thread."""
    return claims.decide(workspace, message, here=here, free=free)


def round_of(claims: Claims) -> None:
    """One round of the keeper thread, in this thread."""
    claims.keeper.round()


def receive_one(claims: Claims, queue_url: str | None = None):
    (message,) = claims.queues.receive(max_messages=1, wait_seconds=0, queue_url=queue_url)
    return message


def depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return sum(int(attributes[k]) for k in attributes if k.startswith("ApproximateNumberOfMessages"))


def send(sqs, url: str, command_id: str) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"commandId": command_id}))


def test_a_free_workspace_runs_here_and_a_held_one_goes_to_its_owners_inbox(sqs, dynamodb, input_url, tmp_path):
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admitted = admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    assert admitted is not None and admitted.warnings == ()
    fence = admitted.fence["fence"]
    assert admitted.fence == {"table": "leases", "workspace": WORKSPACE, "owner": "a", "fence": fence}
    send(sqs, input_url, "c2")
    assert admit(b, WORKSPACE, receive_one(b), here=False, free=True) is None
    forwarded = receive_one(a, a.inbox)  # in a's inbox, the original deleted from the input queue
    assert json.loads(forwarded.body)["commandId"] == "c2" and depth(sqs, input_url) == 1  # c1, still a's
    assert admit(a, WORKSPACE, forwarded, here=True, free=False) is not None  # a runs it: an interrupt


def test_with_no_free_slot_a_command_goes_back_to_the_queue_and_an_idle_lease_is_given_up(
    sqs, dynamodb, input_url, tmp_path
):
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    assert admit(a, WORKSPACE, receive_one(a), here=False, free=True) is not None  # a holds it, ran c1
    send(sqs, input_url, "c2")
    assert admit(a, WORKSPACE, receive_one(a), here=False, free=False) is None  # a is busy elsewhere now
    released = a.table.holder(WORKSPACE)  # given up for whoever is idle: kept, without owner or inbox
    assert released is not None and released.owner is None and released.inbox is None
    attributes = sqs.get_queue_attributes(QueueUrl=input_url, AttributeNames=["All"])["Attributes"]
    visible, held = attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]
    assert (visible, held) == ("1", "1")  # the copy of c2, ready for anyone; c1, still held by a (c2 deleted)
    admitted = admit(b, WORKSPACE, _put_back_copy(sqs, b, input_url), here=False, free=True)
    assert admitted is not None and admitted.fence["owner"] == "b"


class StandInRouter:
    def __init__(self, *, busy: frozenset[str], free: int):
        self.busy, self.free = busy, free

    def workspace_names(self) -> frozenset[str]:
        return self.busy

    def free_slots(self) -> int:
        return self.free


def test_a_container_sharing_the_queue_receives_what_it_can_start_and_when_full_ever_more_slowly(
    sqs, dynamodb, input_url, tmp_path
):
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    a.publish(StandInRouter(busy=frozenset(), free=2))
    assert (a.pause_seconds(), a.batch_size()) == (0, 2)  # free slots: receive at once, as many as can start
    a.publish(StandInRouter(busy=frozenset({"other/u1/site"}), free=1))
    assert (a.pause_seconds(), a.batch_size()) == (0, 1)  # not ten, nine of them only to be put back
    a.publish(StandInRouter(busy=frozenset({"other/u1/site"}), free=0))
    pauses = [a.pause_seconds()]
    for index in range(4):
        send(sqs, input_url, f"waiting-{index}")
        assert admit(a, WORKSPACE, receive_one(a), here=False, free=False) is None  # put back
        pauses.append(a.pause_seconds())
    assert pauses == [0.5, 1.0, 2.0, 2.0, 2.0]  # doubled up to the longest
    send(sqs, input_url, "for-a-workspace-here")
    assert admit(a, "other/u1/site", receive_one(a), here=True, free=False) is not None  # an interrupt
    assert a.pause_seconds() == 0.5  # back to the first pause: commands for us are arriving
    admit(a, WORKSPACE, receive_one(a), here=False, free=False)
    a.publish(StandInRouter(busy=frozenset(), free=1))
    assert a.pause_seconds() == 0
    send(sqs, input_url, "next")
    assert admit(a, "next/u1/site", receive_one(a), here=False, free=True) is not None  # runs here: full again
    a.publish(StandInRouter(busy=frozenset({"other/u1/site", "next/u1/site"}), free=0))
    assert a.pause_seconds() == 1.0  # where it was: only an interrupt brings it down


def _put_back_copy(sqs, claims: Claims, input_url: str):
    """The copy put back: a new message, so SQS's redrive count started again."""
    message = receive_one(claims)
    assert message.receive_count == 1
    return message


def test_a_dead_owners_lease_is_taken_over_its_inbox_adopted_and_removed_once_empty(sqs, dynamodb, input_url, tmp_path):
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path / "disk-a")
    b, b_clock, _ = container("b", sqs, dynamodb, input_url, tmp_path / "disk-b")
    send(sqs, input_url, "c1")
    first = admit(a, WORKSPACE, receive_one(a), here=False, free=True).fence["fence"]
    a.table.client.update_item(  # what a's last worker wrote: a branch it could not push
        TableName="leases",
        Key={"workspace": {"S": WORKSPACE}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "pending"},
        ExpressionAttributeValues={":p": {"SS": ["thread-t1"]}},
    )
    send(sqs, input_url, "c2")  # a live owner: forwarded
    assert admit(b, WORKSPACE, receive_one(b), here=False, free=True) is None
    round_of(b)  # b watches a's lease and roster beat; a is dead from here on
    b_clock.now += LEASE
    round_of(b)
    assert a.inbox in b.inboxes  # adopted: whatever was forwarded to the dead owner is polled
    send(sqs, input_url, "c3")
    admitted = admit(b, WORKSPACE, receive_one(b), here=False, free=True)
    assert admitted is not None and admitted.fence == {**admitted.fence, "owner": "b", "fence": first + 1}
    (warning,) = admitted.warnings  # another disk: what stayed there is said, not dropped silently
    assert "thread-t1" in warning and "container a" in warning
    receive_one(b, a.inbox)  # c2, forwarded to a: b's poller would take it from the adopted inbox
    b.inboxes.pollers[a.inbox][0].empty_rounds = 2
    round_of(b)  # found empty lately, but c2 is in flight: the inbox stays
    assert a.inbox in b.inboxes and "a" in {m.owner for m in b.roster.members()}
    sqs.purge_queue(QueueUrl=a.inbox)
    round_of(b)  # empty: removed, then a's roster entry
    assert a.inbox not in b.inboxes and {m.owner for m in b.roster.members()} == {"b"}
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=a.inbox)


def test_a_lease_lost_while_paused_is_reported_to_the_loop(sqs, dynamodb, input_url, tmp_path):
    a, a_clock, a_posted = container("a", sqs, dynamodb, input_url, tmp_path)
    b, b_clock, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    round_of(b)
    a_clock.now += LEASE  # a paused (SIGSTOP) longer than its lease
    b_clock.now += LEASE
    round_of(b)
    send(sqs, input_url, "c2")
    assert admit(b, WORKSPACE, receive_one(b), here=False, free=True).warnings == ()  # same disk: nothing lost
    round_of(a)  # a wakes up
    assert a_posted == [LeasesLost((WORKSPACE,))]


def test_a_clean_exit_releases_its_leases_and_empties_its_inbox_into_the_input_queue(
    sqs, dynamodb, input_url, tmp_path
):
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    send(sqs, a.inbox, "forwarded-late")  # forwarded as a was stopping: nobody will poll a's inbox again
    a.close(timeout=1)
    assert a.table.holder(WORKSPACE).owner is None and a.table.holders() == []  # released, kept for its record
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=a.inbox)
    bodies = [
        json.loads(m["Body"])["commandId"]
        for m in sqs.receive_message(QueueUrl=input_url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies == ["forwarded-late"]  # back on the input queue (c1 is still in flight there)
    send(sqs, input_url, "c3")
    admitted = admit(b, WORKSPACE, receive_one(b), here=False, free=True)
    assert admitted is not None and admitted.fence["owner"] == "b"  # at once: released, not run out
    assert {m.owner for m in b.roster.members()} == {"b"}  # a left the roster


def test_an_unreachable_lease_table_puts_the_command_back_never_dead_letters_it(sqs, dynamodb, input_url, tmp_path):
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    dynamodb.delete_table(TableName="leases")  # as good as DynamoDB being down, for the claim
    send(sqs, input_url, "c1")
    assert admit(a, WORKSPACE, receive_one(a), here=False, free=True) is None
    attributes = sqs.get_queue_attributes(QueueUrl=input_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # the copy, ten seconds late
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # the original deleted


def test_a_container_forgets_what_it_watched_of_leases_released_since(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 9: every workspace another container ever held stayed in the watch for good."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    round_of(b)
    assert set(b.table._seen) == {WORKSPACE}  # b watches a's lease, to take it over if a dies
    a.close(timeout=1)  # released: nobody holds it
    round_of(b)
    assert b.table._seen == {} and b.table.holders() == []


def test_a_clean_exit_brings_back_what_it_put_off_in_its_inbox(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 2: a command put off in our inbox (a dead worker's retry, a response to send again) is
    invisible when the inbox is emptied at exit, and went with the inbox: stranded for SQS's retention."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    send(sqs, a.inbox, "retry-me")
    a.delivery.retry_later(receive_one(a, a.inbox), 60)  # the delivery thread is not started: done at once
    assert depth(sqs, a.inbox) == 1 and sqs.receive_message(QueueUrl=a.inbox).get("Messages") is None
    a.close(timeout=1)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=a.inbox)
    back = sqs.receive_message(QueueUrl=input_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["commandId"] for m in back] == ["retry-me"]


def test_a_live_containers_inbox_is_never_adopted_or_removed_even_when_its_lease_stands_still(
    sqs, dynamodb, input_url, tmp_path
):
    """Issue 18, defect 1: an owner whose lease stood still (renewals slow, not dead) had its inbox adopted;
    once it released its leases, no lease named the inbox and the adopter deleted it under the live owner."""
    a, a_clock, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, b_clock, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    a.publish(StandInRouter(busy=frozenset({WORKSPACE}), free=0))  # a works there: no idle release
    a.ownership.renew = lambda: []  # a's lease renewals stall; a itself lives and beats
    round_of(b)
    for _ in range(3):
        a_clock.now += LEASE / 2
        b_clock.now += LEASE / 2
        round_of(a)
        round_of(b)
    assert a.inbox not in b.inboxes  # alive: nothing to adopt
    send(sqs, input_url, "c2")
    assert admit(b, WORKSPACE, receive_one(b), here=False, free=True) is not None  # its lease, run out: taken
    a.ownership.leases.clear()  # a's run there ended; it holds no lease now
    a.publish(StandInRouter(busy=frozenset(), free=1))
    for _ in range(3):
        for poller, _ in b.inboxes.pollers.values():  # whatever b polls counts as found empty
            poller.empty_rounds = 2
        round_of(a)
        round_of(b)
    assert depth(sqs, a.inbox) == 0 and a.inbox not in b.inboxes  # a's inbox is still there, a's alone


def test_a_forward_that_fails_puts_the_command_back_as_a_new_message(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 1: a retry is a new copy, so retrying never counts towards maxReceiveCount."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    sqs.delete_queue(QueueUrl=a.inbox)  # unreachable for a moment (an operator, a permission)
    send(sqs, input_url, "c2")
    assert admit(b, WORKSPACE, receive_one(b), here=False, free=True) is None
    attributes = sqs.get_queue_attributes(QueueUrl=input_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # the copy, two seconds late
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # c1 only: c2's original deleted


def test_a_lease_run_out_on_our_clock_but_still_ours_is_renewed_with_the_same_fence(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 5: it was taken again with a raised fence, fencing out our own finishing worker."""
    a, a_clock, posted = container("a", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    first = admit(a, WORKSPACE, receive_one(a), here=False, free=True).fence
    a_clock.now += LEASE  # a slow keeper round: run out on a's clock; nobody took it
    send(sqs, input_url, "c2")
    again = admit(a, WORKSPACE, receive_one(a), here=True, free=False)
    assert again is not None and again.fence == first and posted == []
    assert a.ownership.holds(WORKSPACE)


def test_a_lease_of_ours_found_taken_over_at_a_claim_is_reported_lost(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 5: it was dropped silently; the run here went on holding the workspace."""
    a, a_clock, posted = container("a", sqs, dynamodb, input_url, tmp_path)
    b, b_clock, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    round_of(b)
    a_clock.now += LEASE  # a paused
    b_clock.now += LEASE
    send(sqs, input_url, "c2")
    assert admit(b, WORKSPACE, receive_one(b), here=False, free=True) is not None  # taken over
    send(sqs, input_url, "c3")
    assert admit(a, WORKSPACE, receive_one(a), here=True, free=False) is None  # a wakes: forwarded to b
    assert posted == [LeasesLost((WORKSPACE,))] and not a.ownership.holds(WORKSPACE)
    assert json.loads(receive_one(b, b.inbox).body)["commandId"] == "c3"


class GatedClient:
    """The real DynamoDB client; calls named in `gated` wait until the gate opens."""

    def __init__(self, client, gated: set[str]):
        self.client, self.gated, self.gate = client, gated, threading.Event()
        self.waiting = threading.Event()  # a gated call is waiting now
        self.exceptions = client.exceptions

    def __getattr__(self, name):
        call = getattr(self.client, name)
        if name not in self.gated:
            return call

        def gated_call(**kwargs):
            if not self.gate.is_set():
                self.waiting.set()
            assert self.gate.wait(30)
            return call(**kwargs)

        return gated_call


def test_the_loop_never_waits_on_dynamodb_and_admission_never_waits_on_the_keeper(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 8: admit ran on the loop's thread under the lock the keeper held while renewing one
    lease after another; at ~11 s a call the loop stalled and the health check replaced the container."""
    gated = GatedClient(dynamodb, {"update_item"})
    gated.gate.set()
    a, _, posted = container("a", sqs, gated, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    a.table.client.gate.clear()  # DynamoDB hangs on writes from now on: the keeper's renewal waits
    keeper = threading.Thread(target=round_of, args=(a,))
    keeper.start()
    assert gated.waiting.wait(10)  # the keeper's renewal hangs on DynamoDB now
    send(sqs, input_url, "c2")
    decided = []
    asking = threading.Thread(target=lambda: decided.append(admit(a, WORKSPACE, receive_one(a), here=True, free=False)))
    asking.start()
    asking.join(10)
    assert decided and decided[0] is not None  # decided while the renewal hangs
    a._admitter.start()  # the loop's side: `admit` hands the command over and returns at once
    send(sqs, input_url, "c3")
    results: list = []
    a.admit("other/u1/site", receive_one(a), here=False, free=True, then=results.append)
    assert results == []  # not decided on the loop's thread: the take of a new lease hangs
    a.table.client.gate.set()
    keeper.join(10)
    deadline = time.monotonic() + 10
    while not any(isinstance(event, Decided) for event in posted) and time.monotonic() < deadline:
        time.sleep(0.05)
    (event,) = [e for e in posted if isinstance(e, Decided)]
    event.apply()  # on the loop's thread
    assert len(results) == 1 and results[0].fence["workspace"] == "other/u1/site"
    a.close(timeout=5)


def test_the_inbox_of_a_container_that_died_holding_nothing_is_swept(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 9: only inboxes named by a lease were ever adopted; an idle container's stayed for good."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, b_clock, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    round_of(b)
    b_clock.now += LEASE  # a died (SIGKILL) with no lease: it never beats again
    round_of(b)
    assert a.inbox in b.inboxes
    b.inboxes.pollers[a.inbox][0].empty_rounds = 2
    round_of(b)
    assert a.inbox not in b.inboxes and [m.owner for m in b.roster.members()] == ["b"]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=a.inbox)


def test_an_inbox_left_with_a_message_in_flight_is_adopted_at_once_and_drained(sqs, dynamodb, input_url, tmp_path):
    """Issue 18, defect 2: a message in flight at a clean exit stayed in a queue nobody read."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    round_of(b)
    send(sqs, a.inbox, "in-flight")
    sqs.receive_message(QueueUrl=a.inbox, VisibilityTimeout=1)  # a receive whose holder is gone
    a.close(timeout=1)
    assert depth(sqs, a.inbox) == 1  # not deleted with the message in it
    round_of(b)  # a left marked gone: adopted without waiting a lease period
    assert a.inbox in b.inboxes
    time.sleep(1.1)
    assert json.loads(receive_one(b, a.inbox).body)["commandId"] == "in-flight"  # what b's poller gets


def test_a_command_put_back_from_an_inbox_goes_to_the_input_queue(sqs, dynamodb, input_url, tmp_path):
    """Put back on its own inbox, a command would wait for that (full) owner alone: every idle container
    must see it (a regression of the container bench's ratio at three, 2.79 to 1.87)."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    send(sqs, a.inbox, "forwarded")  # forwarded to a while it ran c1; a is busy elsewhere now
    assert admit(a, WORKSPACE, receive_one(a, a.inbox), here=False, free=False) is None
    assert depth(sqs, a.inbox) == 0
    back = a.queues.receive(max_messages=10, wait_seconds=0)  # (c1 is still in flight there)
    assert [json.loads(m.body)["commandId"] for m in back] == ["forwarded"]


def test_a_container_taken_for_dead_counts_its_leases_lost_and_joins_again_with_a_new_inbox(
    sqs, dynamodb, input_url, tmp_path
):
    """Paused past a lease period, a container finds its roster entry swept by the others (and its inbox
    removed): it must not go on as if nothing happened, with an inbox nobody may forward to."""
    a, _, posted = container("a", sqs, dynamodb, input_url, tmp_path)
    b, b_clock, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "c1")
    admit(a, WORKSPACE, receive_one(a), here=False, free=True)
    old_inbox = a.inbox
    round_of(b)
    b_clock.now += LEASE  # a paused: b takes it for dead, adopts its (empty) inbox, removes it, then its entry
    round_of(b)
    b.inboxes.pollers[old_inbox][0].empty_rounds = 2
    round_of(b)
    assert "a" not in {m.owner for m in b.roster.members()}
    round_of(a)  # a wakes
    assert posted == [LeasesLost((WORKSPACE,))] and a.inbox != old_inbox
    assert depth(sqs, a.inbox) == 0 and "a" in {m.owner for m in b.roster.members()}
    assert {m.inbox for m in b.roster.members() if m.owner == "a"} == {a.inbox}


def test_the_next_owner_of_a_workspace_learns_the_newest_command_admitted_by_the_last(
    sqs, dynamodb, input_url, tmp_path
):
    """A command sent before one another container ran, and received after that container released the
    workspace, is superseded there: the lease item keeps the newest command admitted (newestSentMs)."""
    a, _, _ = container("a", sqs, dynamodb, input_url, tmp_path)
    b, _, _ = container("b", sqs, dynamodb, input_url, tmp_path)
    send(sqs, input_url, "old")
    time.sleep(0.01)  # SentTimestamp is in milliseconds
    send(sqs, input_url, "new")
    old, new = sorted(a.queues.receive(max_messages=10, wait_seconds=0), key=lambda m: m.first_sent_ms)
    assert 0 < old.first_sent_ms < new.first_sent_ms
    admitted = a.decide(WORKSPACE, new, here=False, free=True, command_id="new")
    assert admitted is not None and admitted.newest is None  # a new workspace: nothing known before
    assert a.table.holder(WORKSPACE).newest == (new.first_sent_ms, "new")
    a.decide(WORKSPACE, old, here=True, free=True, command_id="old")  # an older one never lowers it
    assert a.table.holder(WORKSPACE).newest == (new.first_sent_ms, "new")
    a.close(timeout=1)
    later = b.decide(WORKSPACE, old, here=False, free=True, command_id="old")
    assert later is not None and later.fence["owner"] == "b" and later.newest == (new.first_sent_ms, "new")
