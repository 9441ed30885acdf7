"""Reading a Glue run's logs back: CloudWatch Logs first, the emulator's local copy second
(moto keeps logs in memory only, so after a restart the local copy is what is left)."""

from __future__ import annotations

from botocore.exceptions import ClientError


class LogsError(RuntimeError):
    pass


def _latest_run(glue, job: str | None) -> dict:
    names = [job] if job else glue.list_jobs()["JobNames"]
    runs = []
    for name in names:
        try:
            runs.extend(glue.get_job_runs(JobName=name, MaxResults=1)["JobRuns"])
        except glue.exceptions.EntityNotFoundException:
            raise LogsError(f"no Glue job named {name!r}") from None
    if not runs:
        raise LogsError(f"no runs yet{f' of {job}' if job else ''}")
    return max(runs, key=lambda r: r["StartedOn"])


def read_run_logs(stack, job: str | None, run_id: str | None, stream: str):
    """(run, [(title, lines)]) for the run asked for, or the latest one."""
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    if run_id:
        if not job:
            raise LogsError("--run needs the job name too: musicpipe logs JOB --run RUN_ID")
        try:
            run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        except glue.exceptions.EntityNotFoundException as exc:
            raise LogsError(str(exc)) from None
    else:
        run = _latest_run(glue, job)
    logs = stack.aws.client("logs")
    kinds = ("output", "error") if stream == "all" else (stream,)
    sections = []
    for kind in kinds:
        group = f"{run['LogGroupName']}/{kind}"
        lines = _cloudwatch_lines(logs, group, run["Id"])
        if lines is None:
            local = (
                stack.glue_state_dir
                / "work"
                / run["Id"]
                / f"std{'out' if kind == 'output' else 'err'}.log"
            )
            lines = local.read_text(errors="replace").splitlines() if local.exists() else []
            group += " (local copy)"
        sections.append((f"{group} / {run['Id']}", lines))
    return run, sections


def _cloudwatch_lines(logs, group: str, stream: str) -> list[str] | None:
    lines: list[str] = []
    token = None
    try:
        while True:
            kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            page = logs.get_log_events(**kwargs)
            lines.extend(e["message"] for e in page["events"])
            if not page["events"] or page.get("nextForwardToken") == token:
                return lines
            token = page.get("nextForwardToken")
    except ClientError:
        return None
