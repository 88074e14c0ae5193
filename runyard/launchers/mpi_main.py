"""``python -m runyard.launchers.mpi_main SCRIPT ARGS…``: run an MPI rank's script like ``python SCRIPT`` does,
but an uncaught exception aborts the whole MPI job (as ``python -m mpi4py`` does).

Without it, a rank that raises still calls ``MPI_Finalize`` at exit and waits there for ranks that are blocked in a
collective waiting for it: the job hangs instead of failing.
"""
from __future__ import annotations

import os
import runpy
import sys
import time
import traceback


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m runyard.launchers.mpi_main SCRIPT [ARGS…]")
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            _abort(exc.code if isinstance(exc.code, int) else 1, print_traceback=False, message=exc.code)
        raise
    except BaseException:  # noqa: BLE001 - any uncaught exception must end every rank, not only this one
        _abort(1, print_traceback=True)


def _abort(code: int, print_traceback: bool, message: object = None) -> None:
    if print_traceback:
        traceback.print_exc()
    elif message is not None and not isinstance(message, int):
        print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    _report(code)
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.COMM_WORLD.Abort(code)
    os._exit(code)


def _report(code: int) -> None:
    """Leave ``<rank>.failed`` (exit code, time) beside the rank FIFOs: mpirun's own report of which rank failed is
    not reliable (Open MPI 4.1 sometimes loses it: "Data unpack would read past end of buffer")."""
    folder, rank = os.environ.get("RUNYARD_RANK_LOG_DIR"), os.environ.get("OMPI_COMM_WORLD_RANK")
    if folder and rank is not None:
        try:
            with open(os.path.join(folder, f"{rank}.failed"), "w") as f:
                f.write(f"{code} {time.time_ns()}\n")
        except OSError:
            pass


if __name__ == "__main__":
    main()
