"""How the processes of one torchrun launch agree while they start: rank 0's decisions, and a
user error of any rank, printed at once by rank 0 whichever rank met it.

Start-up (train.py) passes through *rounds*. In a round every rank posts its outcome to
torchrun's TCP store (the rendezvous store: it exists before the process group does, so the
config and device checks can agree too) and waits for every other rank's. A round returns rank
0's value (train.rank0_decides), or, when some rank posted a UserError, raises the lowest such
rank's on every rank, named "rank R (host): ..."; rank 0 prints it and exits (errors.run_main),
and torchrun ends the others. A rank other than 0 that meets a UserError between rounds (its own
data, its node's tokenizer files or GPUs) posts it as its next round (announce), where rank 0
meets it; rank 0 prints its own errors at once.
Without this only rank 0's errors were printed at once: another rank's waited
errors.OTHER_RANK_WAIT_S, rank 0 meanwhile blocked in a collective.

The rule that keeps this free of deadlocks: until close(), the ranks meet only in rounds, never
in a process-group collective, so an announced error always lands in a round every rank reaches.
An announce that no round answers within OTHER_RANK_WAIT_S (the rule broken) gives up, and the
error takes errors.run_main's wait, as before.
"""
import datetime
import os
import pickle
import socket

from errors import OTHER_RANK_WAIT_S, UserError


class StartupSync:
    """The rounds of one launch: this process's rank, the world size and the store (a
    torch.distributed Store, or connect(), which makes it on first use); neither: one process."""

    def __init__(self, store=None, rank=0, world_size=1, connect=None):
        self._store, self._connect, self.rank, self.world_size = store, connect, rank, world_size
        self.launched = store is not None or connect is not None
        self.rounds, self.open = 0, True
        # a torchrun restart may reuse the agent's store: its rounds must not read the last try's
        self.prefix = f"kronecker_nanogpt/restart_{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}"

    @classmethod
    def from_environment(cls):
        """Under torchrun (WORLD_SIZE set): a sync on the store that torch.distributed's env://
        init would make (torchrun's agent store, or rank 0's), connected at its first round;
        train.py gives it to init_process_group too. Otherwise a one-process sync, whose rounds
        just run their decision."""
        if "WORLD_SIZE" not in os.environ:
            return cls()

        def connect():
            import torch.distributed as dist  # only launches under torchrun need it here
            return next(dist.rendezvous("env://"))[0]
        return cls(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ["WORLD_SIZE"]),
                   connect=connect)

    @property
    def store(self):
        """The store, connected on first use (None for one process)."""
        if self._store is None and self._connect is not None:
            self._store = self._connect()
        return self._store

    def round(self, decide=None):
        """One round: decide() on this rank (None: nothing to post), then every rank's outcome.
        Returns rank 0's value; raises the lowest failing rank's UserError on every rank."""
        if not self.launched:
            return decide() if decide else None
        try:
            posted = (None, decide() if decide else None)
        except UserError as err:
            posted = (str(err), None)
        return self._exchange(posted)

    def announce(self, err):
        """Post err (a UserError this rank met between rounds) as this rank's next round and
        raise what the round agrees (the lowest failing rank's error). Returns, doing nothing,
        on rank 0 (it prints its own error at once, and torchrun then ends the others), for one
        process, after close(), for an error a round raised (already agreed), or when no round
        answers within OTHER_RANK_WAIT_S (or no store can be reached)."""
        if not self.launched or not self.open or self.rank == 0:
            return
        try:
            self._exchange((str(err), None), timeout_s=OTHER_RANK_WAIT_S)
        except (RuntimeError, ValueError):  # no rank came to the round (DistStoreError), no store
            self.open = False

    def close(self):
        """The last round of start-up: after it the ranks meet in process-group collectives, so
        an error no longer has a round to land in (announce does nothing)."""
        self.round()
        self.open = False

    def _exchange(self, posted, timeout_s=None):
        """Post (error or None, value), wait for every rank's post of this round, return rank
        0's value or raise the lowest rank's error (the sync is then no longer open)."""
        key = f"{self.prefix}/round_{self.rounds}/"
        self.rounds += 1
        self.store.set(f"{key}{self.rank}", pickle.dumps((*posted, socket.gethostname())))
        keys = [f"{key}{r}" for r in range(self.world_size)]
        if timeout_s is None:
            self.store.wait(keys)
        else:
            self.store.wait(keys, datetime.timedelta(seconds=timeout_s))
        outcomes = [pickle.loads(self.store.get(k)) for k in keys]
        failed = [(r, error, host) for r, (error, _, host) in enumerate(outcomes) if error is not None]
        if failed:
            self.open = False
            r, error, host = failed[0]
            raise UserError(error if r == 0 else f"rank {r} ({host}): {error}")
        return outcomes[0][1]
