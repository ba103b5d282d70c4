"""Fault-injection driver: SIGKILL ``artent train`` at each stage of a checkpoint save, then rerun.

``python kill_driver.py WORKDIR MODEL DATA STAGES`` (STAGES comma-separated, as passed to
``artent.training.checkpoints.journal``). Each run is a forked child running ``artent train``
through ``artent.cli.main``, so torch, transformers and peft are imported once for all of them (the
parent never computes, and torch has one thread, so forking is safe). Prints one JSON line: the
reference run, and per stage how the killed child ended and the rerun's exit code and stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

KILL_STEP = 2  # the middle save of steps 0, 2, 4


def main() -> None:
    work, model, data, stages = sys.argv[1:5]
    import torch

    torch.set_num_threads(1)
    import peft  # noqa: F401  (imported once, before the forks)
    import transformers  # noqa: F401

    import artent.training.checkpoints as checkpoints
    from artent.cli import main as cli

    config = os.path.join(work, "quiet.yaml")
    with open(config, "w") as f:
        f.write("progress: false\n")

    def args(out: str) -> list[str]:
        return [
            *("train", "--model", model, "--data", data, "--out", out, "--config", config),
            *("--steps", "4", "--batch-size", "4", "--seq-len", "64", "--rank", "2"),
            *("--save-steps", "0,2,4", "--eval-every", "1"),
        ]

    def child(out: str, stage: str | None = None) -> dict:
        log = f"{out}.{stage or 'run'}.stderr"
        pid = os.fork()
        if pid == 0:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if stage is not None:

                def kill(at: str, step: int) -> None:
                    if (at, step) == (stage, KILL_STEP):
                        os.kill(os.getpid(), signal.SIGKILL)

                checkpoints.journal = kill
            try:
                code = cli(args(out))
            except BaseException:  # noqa: BLE001 - reported to the test as a traceback
                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        with open(log) as f:
            err = f.read()
        return {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "stderr": err,
        }

    results: dict = {"reference": child(os.path.join(work, "reference"))}
    for stage in stages.split(","):
        out = os.path.join(work, stage)
        results[stage] = {"killed": child(out, stage), "rerun": child(out)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
