"""The operator's web page: one screen of the running system, and HALT / CANCEL_ALL / FLATTEN / KILL_NOW.

A separate process (``python -m dashboard``, started by ``run_system.sh``) that knows the engine only as the risk
monitor does: files (heartbeats, risk log, order log, daily equity, the monitor's heartbeat), the kill flag it may
write, and the authenticated command channel with its own key. It imports no engine runtime (an import-linter
contract), so it keeps working when the engine is frozen or gone. Start at ``dashboard/app.py``.
"""
