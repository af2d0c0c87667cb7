"""Stop signals: SIGTERM and SIGUSR1 ask a training run to checkpoint and exit (code 75).

SLURM sends SIGTERM (or the early signal of `#SBATCH --signal=USR1@120`) before it kills a job;
torchrun forwards SIGTERM to its workers. The handler only sets a flag: the training loop reads
it after each optimiser step, all ranks agree on it with one all-reduce (a signal that reached
one rank stops them all at the same step), then rank 0 writes a checkpoint. SIGINT (Ctrl-C) is
left alone: it still raises KeyboardInterrupt at once, without a checkpoint.

    with StopSignals() as stop:
        ...
        name = stop.agreed(device, world_size)  # a collective: every rank calls it at every step
        if name:  # "SIGTERM" or "SIGUSR1"
            ...
"""
import signal

import torch
import torch.distributed as dist

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Context manager: installs the flag-setting handler, restores the previous ones on exit."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals, self.previous, self.received = signals, {}, None

    def __enter__(self):
        for sig in self.signals:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        self.received = signum  # only a flag: the loop decides when to stop

    def agreed(self, device, world_size):
        """The name of the stop signal any rank received ("SIGTERM", "SIGUSR1"), else None, on
        every rank: an all-reduce MAX of the signal numbers (0 = none)."""
        number = int(self.received or 0)
        if world_size > 1:
            t = torch.tensor([number], device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            number = int(t.item())
        return signal_name(number)


def signal_name(number):
    """"SIGTERM" for 15 (a number agreed on with an all-reduce MAX), None for 0."""
    return signal.Signals(int(number)).name if number else None
