"""The sweep driver: the detached process behind a HyperDrive parent run (a Supervisor whose work is trials).

It keeps at most ``max_concurrent_runs`` trials running and starts no more than ``max_total_runs``; every 0.25 s it
reads the running trials' primary metric from the store and lets the policy stop those it should (they end Canceled
with the reason in their ``runyard.early_termination`` tag); it logs the best-so-far value of the primary metric on
the parent each time a trial ends, writes a line per event into the parent's log, and stops at
``max_duration_minutes``. A cancel of the parent cancels every running trial.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from runyard import plugins
from runyard.config.datapath import DataPath, resume_arguments
from runyard.experiment import Experiment
from runyard.hyperdrive.config import (
    HYPERPARAMETERS_TAG,
    RESUMED_TAG,
    RUN_KIND,
    STOPPED_BY_TAG,
    apply_parameters,
    final_metrics,
    history_of,
    metric_series,
    primary_metric,
)
from runyard.hyperdrive.policies import better, policy_from_dict
from runyard.hyperdrive.sampling import Sampler, sampling_from_dict
from runyard.run import Run
from runyard.runtime import supervisor_start
from runyard.runtime.logfiles import RotatingLog, user_log_name
from runyard.runtime.request import RunRequest
from runyard.runtime.supervisor import Supervisor
from runyard.status import RunStatus
from runyard.store import snapshots
from runyard.store.metadata.queries import IN_CHUNK
from runyard.submission import submit
from runyard.workspace import Workspace

_TICK = 0.05  # a finished trial is replaced within this (reading a few rows of the store costs ~1 ms)
_POLICY_EVERY = 0.2  # seconds between policy evaluations (only the running trials' metrics are read again)


class SweepDriver(Supervisor):
    """The life cycle of a sweep's parent run, with trials as its work (run kind "sweep")."""

    def __init__(self, run_dir: Path, request: RunRequest | None = None) -> None:
        super().__init__(run_dir, request)
        self.config = self.request.extra["hyperdrive"]
        self.metric, self.maximize = "", True  # read from the run record once the store is open
        self.public = Workspace.from_ref(self.request.workspace)  # trials are submitted as a user would
        self._parent: Run | None = None
        self.policy = policy_from_dict(self.config["policy"])
        self._running: dict[str, dict[str, Any]] = {}  # run id → its configuration
        self._finished: dict[str, str] = {}  # run id → final status
        self._evaluated: dict[str, int] = {}  # run id → the last interval the policy looked at
        self._ended_series: dict[str, list[float]] = {}  # primary metric of ended trials (read once)
        self._next_policy = 0.0
        self._snapshot: snapshots.Snapshot | None = None  # the sweep's, which every trial runs
        self._out = RotatingLog(run_dir / user_log_name(0), 10 << 20)
        # Trials' supervisors are forked by a zygote made now, while this process has no thread yet.
        self._zygote = supervisor_start.Zygote() if sys.platform.startswith("linux") else None
        supervisor_start.use_zygote(self._zygote)

    def print(self, line: str) -> None:
        """A line of the sweep's own log (what ``wait_for_completion(show_output=True)`` streams)."""
        self._out.write((line + "\n").encode())
        self.say(line)

    def _wait_for_slot(self) -> bool:
        return True  # the sweep itself takes no slot: its trials queue for them

    def _execute(self) -> tuple[RunStatus, dict | None, int | None]:
        store = self.store
        self._set(RunStatus.RUNNING)
        self.metric, self.maximize = primary_metric(store.get_run(self.run_id))
        experiment = Experiment(self.public, self.request.run.experiment_name)
        trial = self.request.job
        # Every trial runs the code the sweep was submitted with (as on Azure, where children share the parent's
        # snapshot): the source folder is not walked again per trial, and an edit made meanwhile does not leak in.
        self._snapshot = (snapshots.stored(self.request.snapshot_id, self.ws.artifacts, self.run_dir,
                                           trial.source_directory) if self.request.snapshot_id else None)
        history = history_of(self.ws, self.config["resume_from"] + self.config["resume_child_runs"], self.metric)
        sampler = Sampler(sampling_from_dict(self.config["sampling"]), self.maximize, history)
        total, concurrent = self.config["max_total_runs"], self.config["max_concurrent_runs"]
        deadline = time.monotonic() + self.config["max_duration_minutes"] * 60
        self.print(f"sweep of {total} trial(s), at most {concurrent} at once, {self.config['sampling']['kind']} sampling, "
                   f"{self.policy!r}, primary metric {self.metric} ({'MAXIMIZE' if self.maximize else 'MINIMIZE'})"
                   + (f"; warm start from {len(history)} earlier trial(s)" if history else ""))
        started, exhausted, best = 0, False, None
        warned_metric = False
        resumed = list(self.config.get("resume_child_runs") or [])  # each re-run first, from its own outputs
        while True:
            self._poll_store()
            if self._stop.is_set():
                self.print(f"sweep canceled: canceling {len(self._running)} running trial(s)")
                self._cancel_all("the sweep was canceled")
                return RunStatus.CANCELED, None, None
            if time.monotonic() > deadline:
                self.print(f"max_duration_minutes={self.config['max_duration_minutes']:g} reached: canceling "
                           f"{len(self._running)} running trial(s)")
                self._cancel_all("the sweep reached max_duration_minutes")
                store.set_tag(self.run_id, "runyard.stopped", "max_duration_minutes reached")
                break
            best = self._collect(sampler, best)
            self._apply_policy()
            while resumed and len(self._running) < concurrent and started < total:
                earlier = resumed.pop(0)
                params = json.loads(store.get_run(earlier).tags.get(HYPERPARAMETERS_TAG, "{}"))
                child = self._start(experiment, trial, params, resume=earlier)
                started += 1
                self._running[child] = params
                self.print(f"trial {started}/{total} {child} started, resuming {earlier} from its outputs: "
                           + " ".join(f"{k} {v}" for k, v in params.items()))
            while not resumed and not exhausted and len(self._running) < concurrent and started < total:
                params = sampler.next()
                if params is None:
                    exhausted = True
                    self.print(f"the parameter space is exhausted after {started} trial(s)")
                    break
                child = self._start(experiment, trial, params)
                started += 1
                self._running[child] = params
                self.print(f"trial {started}/{total} {child} started: "
                           + " ".join(f"{k} {v}" for k, v in params.items()))
            completed = [r for r, s in self._finished.items() if s == "Completed"]
            if not warned_metric and len(completed) >= min(3, total):
                warned_metric = True
                if not final_metrics(store, completed, self.metric):
                    names = sorted({m.name for m in store.get_latest_metrics(completed)})
                    note = (f"none of the first {len(completed)} completed trial(s) logged the primary metric "
                            f"{self.metric!r}" + (f"; they logged {', '.join(names)}" if names else ""))
                    self.print("warning: " + note)
                    store.set_tag(self.run_id, "runyard.warning", note)
            if not self._running and (exhausted or started >= total):
                break
            self._housekeeping()
            time.sleep(_TICK)
        return self._outcome()

    # -- trials ---------------------------------------------------------------------------------------------
    def _start(self, experiment: Experiment, trial, params: dict[str, Any], resume: str | None = None) -> str:
        """Submit a trial with ``params``; ``resume``: an earlier trial whose outputs it starts from (an input of
        the trial and ``--resume-from <its path>``, as Azure's resume_child_runs)."""
        job = replace(trial, arguments=apply_parameters(trial.arguments, params))
        tags = {HYPERPARAMETERS_TAG: json.dumps(params)}
        if resume is not None:
            flag, path = resume_arguments(DataPath._of_run(resume, "outputs"))
            job = replace(job, arguments=(*job.arguments, flag, str(path)), inputs=(*job.inputs, path.to_input()))
            tags[RESUMED_TAG] = resume
        info = submit(self.public, experiment.id, experiment.name, job, tags=tags, parent_run_id=self.run_id,
                      snapshot=self._snapshot)
        return info.run_id

    def _run(self) -> Run:
        if self._parent is None:
            self._parent = Run._by_id(self.public, self.run_id)
        return self._parent

    def _collect(self, sampler: Sampler, best: float | None) -> float | None:
        """Record trials that ended; the parent's best-so-far curve."""
        if not self._running:
            return best
        running = list(self._running)  # only these are read: the ended trials stay out of every tick
        infos = {i.run_id: i for first in range(0, len(running), IN_CHUNK)
                 for i in self.store.list_runs(run_ids=running[first:first + IN_CHUNK], limit=IN_CHUNK)}
        ended = [r for r in self._running if infos[r].status.is_terminal()]
        if not ended:
            return best
        finals = final_metrics(self.store, ended, self.metric)
        for run_id in ended:
            params = self._running.pop(run_id)
            status = infos[run_id].status.value
            self._finished[run_id] = status
            value = finals.get(run_id)
            sampler.report(params, value if status == "Completed" else None)
            if value is not None and better(value, best, self.maximize):
                best = value
            if best is not None:
                self._run().log(self.metric, best)  # the parent's series: the best so far, trial by trial
                self._run().flush()
            stopped = infos[run_id].tags.get(STOPPED_BY_TAG)
            self.print(f"trial {run_id} {status}" + (f" by the policy ({stopped})" if stopped else "")
                       + (f": {self.metric}={value:.6g}" if value is not None else f": no {self.metric} logged")
                       + (f" (best so far {best:.6g})" if best is not None else ""))
        return best

    def _apply_policy(self) -> None:
        if self.policy.name == "NoTerminationPolicy" or not self._running or time.monotonic() < self._next_policy:
            return
        self._next_policy = time.monotonic() + _POLICY_EVERY
        finished_ids = set(self._finished)
        unread = [r for r in self._finished if r not in self._ended_series]
        self._ended_series.update(metric_series(self.store, unread, self.metric))
        series = {**self._ended_series, **metric_series(self.store, list(self._running), self.metric)}
        for run_id in list(self._running):
            values = series.get(run_id, [])
            for interval in range(self._evaluated.get(run_id, 0) + 1, len(values) + 1):
                self._evaluated[run_id] = interval
                reason = self.policy.verdict(run_id, interval, series, finished_ids, self.maximize)
                if reason:
                    self.store.set_tag(run_id, STOPPED_BY_TAG, reason)
                    self.print(f"trial {run_id} stopped early: {reason}")
                    self._cancel(run_id)
                    break

    def _cancel(self, run_id: str) -> None:
        try:
            Run._by_id(self.public, run_id).cancel()
        except Exception as exc:  # noqa: BLE001 - the trial may have ended meanwhile
            self.say(f"cancel of {run_id} failed: {exc}")

    def _cancel_all(self, reason: str) -> None:
        for run_id in list(self._running):
            if not self.store.get_run(run_id).status.is_terminal():
                self.store.set_tag(run_id, STOPPED_BY_TAG, reason)
                self._cancel(run_id)
            self._finished[run_id] = self.store.get_run(run_id).status.value
            self._running.pop(run_id, None)

    def _outcome(self) -> tuple[RunStatus, dict | None, int | None]:
        statuses = list(self._finished.values())
        finals = list(final_metrics(self.store, list(self._finished), self.metric).values())
        best = (max(finals) if self.maximize else min(finals)) if finals else None
        self.print(f"sweep done: {len(statuses)} trial(s) — " + ", ".join(
            f"{statuses.count(s)} {s}" for s in ("Completed", "Canceled", "Failed") if statuses.count(s))
            + (f"; best {self.metric} {best:.6g}" if best is not None else ""))
        if statuses and all(s == "Failed" for s in statuses):
            first = next(iter(self._finished))
            cause = (self.store.get_run(first).error or {}).get("message", "no error recorded")
            return RunStatus.FAILED, {"message": f"every trial failed; the first: {cause}", "code": "AllTrialsFailed"}, None
        if statuses and best is None:
            return RunStatus.FAILED, {"message": f"no trial logged the primary metric {self.metric!r}",
                                      "code": "PrimaryMetricMissing"}, None
        return RunStatus.COMPLETED, None, 0

    def _kill_all(self) -> None:
        if self._running:  # the driver itself failed: its trials must not run on unwatched
            self._cancel_all("the sweep's driver stopped")
        super()._kill_all()

    def _finalize(self, status: RunStatus, error: dict | None) -> tuple[RunStatus, dict | None, bool]:
        self._out.close()
        if self._zygote is not None:
            supervisor_start.use_zygote(None)
            self._zygote.close()
            self._zygote = None
        return super()._finalize(status, error)


plugins.register(plugins.RUN_KINDS, RUN_KIND, SweepDriver)
