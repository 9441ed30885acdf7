"""Load the pipeline's DAG folder with Airflow's own DagBag and print what a test checks.

Run as a script (tests/dag/test_dag_integrity.py does, in a clean environment). While the DAG file
is parsed, an audit hook records every network or process call: parsing must do no I/O beyond
reading its own Variable from the environment.
"""

import json
import sys

from airflow.dag_processing.dagbag import DagBag

IO_EVENTS = ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "urllib.Request")
seen: list[str] = []
recording = False


def audit(event: str, args) -> None:
    if recording and event in IO_EVENTS:
        seen.append(f"{event} {args!r:.200}")


sys.addaudithook(audit)
recording = True
bag = DagBag(dag_folder=sys.argv[1])
recording = False

out: dict = {"import_errors": {k: v[-2000:] for k, v in bag.import_errors.items()}, "io": seen}
dag = bag.dags.get(sys.argv[2])
if dag is not None:
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "downstream": sorted(t.downstream_task_ids),
            "operator": type(t).__name__,
            "deferrable": getattr(t, "deferrable", None),
            "trigger_rule": str(t.trigger_rule),
            "retries": t.retries,
            "retry_delay_s": t.retry_delay.total_seconds(),
            "retry_exponential_backoff": bool(t.retry_exponential_backoff),
        }
    out["dag"] = {
        "tasks": tasks,
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "timetable": type(dag.timetable).__name__,
        # The retry timer of an asset-or-time schedule (None: arrivals only).
        "timer": (
            type(dag.timetable.timetable).__name__
            + " "
            + str(getattr(dag.timetable.timetable, "delta", None) or "")
            if hasattr(dag.timetable, "timetable")
            else None
        ),
        "assets": [
            {"uri": asset.uri, "watchers": [w.name for w in asset.watchers]}
            for asset in getattr(dag.timetable.asset_condition, "objects", [])
        ],
    }
print("PROBE " + json.dumps(out, default=str))
