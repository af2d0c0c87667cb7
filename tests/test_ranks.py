"""ranks.py: the start-up rounds in which the ranks of one launch agree on rank 0's decisions and
on any rank's user error, so that rank 0 prints it at once (issue 21 §7). Here the ranks are
threads sharing one in-memory store; tests/test_install.py runs the real thing under torchrun."""
import socket
import threading

import pytest
import torch.distributed as dist

import ranks
from errors import UserError
from ranks import StartupSync

HOST = socket.gethostname()


def launch(world_size, body):
    """body(sync) on world_size threads ("ranks") with one store: {rank: its result or exception}."""
    store, outcome = dist.HashStore(), {}

    def rank(r):
        try:
            outcome[r] = body(StartupSync(store, r, world_size))
        except Exception as err:  # noqa: BLE001 (what each rank ended with is the result)
            outcome[r] = err
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a rank is still waiting: a deadlock"
    return outcome


def test_every_rank_gets_rank_0s_decision():
    assert launch(3, lambda sync: sync.round(lambda: f"rank {sync.rank} decided")) == \
        {0: "rank 0 decided", 1: "rank 0 decided", 2: "rank 0 decided"}


def test_an_error_only_rank_2_meets_between_rounds_reaches_rank_0_at_its_next_round():
    def body(sync):
        sync.round()  # e.g. the run folder's lock
        if sync.rank == 2:  # e.g. its node has no data: it announces instead of waiting 30 s
            err = UserError("data folder data not found")
            sync.announce(err)
            raise err
        return sync.round(lambda: "resume from scratch")  # rank 0's next decision
    outcome = launch(3, body)
    assert {r: str(e) for r, e in outcome.items()} == {r: f"rank 2 ({HOST}): data folder data not found"
                                                       for r in range(3)}


def test_the_lowest_failing_rank_is_the_one_printed_and_rank_0s_own_error_names_no_rank():
    def fail_on(failing):
        def decide_or_fail(sync):
            if sync.rank in failing:
                raise UserError(f"bad on rank {sync.rank}")
        return lambda sync: sync.round(lambda: decide_or_fail(sync))
    assert {str(e) for e in launch(3, fail_on({1, 2})).values()} == {f"rank 1 ({HOST}): bad on rank 1"}
    assert {str(e) for e in launch(3, fail_on({0, 1, 2})).values()} == {"bad on rank 0"}  # e.g. a bad key


def test_rank_0_and_a_closed_start_up_do_not_announce(monkeypatch):
    """Rank 0 prints its own error at once; after close() the ranks meet in process-group
    collectives, so an error there is left to errors.run_main's wait."""
    store = dist.HashStore()
    StartupSync(store, 0, 2).announce(UserError("x"))
    closed = StartupSync(store, 1, 2)
    closed.open = False  # what close() leaves, after its round
    closed.announce(UserError("x"))
    assert store.num_keys() == 0  # neither posted a round (nor waited for one)


def test_an_announce_no_rank_answers_gives_up_after_the_wait(monkeypatch):
    """The deadlock guard: a round no other rank comes to (a collective put between rounds)."""
    monkeypatch.setattr(ranks, "OTHER_RANK_WAIT_S", 0.2)
    sync = StartupSync(dist.HashStore(), 1, 2)
    sync.announce(UserError("alone"))  # returns, without raising, once the wait is over
    assert not sync.open


def test_one_process_rounds_just_decide():
    sync = StartupSync()
    assert sync.round(lambda: 42) == 42 and sync.round() is None
    with pytest.raises(UserError, match="^plain$"):
        sync.round(lambda: (_ for _ in ()).throw(UserError("plain")))
    sync.announce(UserError("nothing to do"))
