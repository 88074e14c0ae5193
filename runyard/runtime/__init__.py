"""The runtime: what executes one node of a run.

A target hands the runtime one typed request (``request.py``); when the run gets its slot the runtime asks the
launcher for the node's processes (``launch.py``, the only caller of a launcher), starts them with their output
captured (``processes.py``, ``logfiles.py``), heartbeats the run and drives its life cycle (``supervisor.py``, shared
by the local target's supervisor and Ray's driver and node agents; other run kinds — a sweep — register their
driver through ``runyard.plugins``).
"""
