"""Overhead of the Glue job emulator: StartJobRun to SUCCEEDED for trivial jobs.

Cold = the first run after the emulator starts; warm = the median of the next runs. Prints a
table and writes bench-results/glue_overhead.json.
"""

from __future__ import annotations

import statistics

from common import private_stack, timed_run, write_results
from rich.console import Console
from rich.table import Table

TRIVIAL = {
    "glueetl": (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print(spark.range(10).count())\n"
    ),
    "pythonshell": "print('hello from a Python shell job')\n",
}
WARM_RUNS = 3


def main() -> None:
    console = Console()
    figures = []
    with private_stack() as stack:
        s3 = stack.aws.client("s3")
        glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
        table = Table(title="Glue emulator overhead (StartJobRun → SUCCEEDED)")
        for col in ("job type", "cold (s)", f"warm median of {WARM_RUNS} (s)", "warm runs (s)"):
            table.add_column(col)
        for command, code in TRIVIAL.items():
            key = f"scripts/bench_{command}.py"
            s3.put_object(Bucket=stack.manifest.artifacts_bucket, Key=key, Body=code.encode())
            extra = (
                {"GlueVersion": "5.1", "WorkerType": "G.1X", "NumberOfWorkers": 2}
                if command == "glueetl"
                else {"MaxCapacity": 0.0625}
            )
            glue.create_job(
                Name=f"bench_{command}",
                Role="arn:aws:iam::123456789012:role/bench",
                Command={
                    "Name": command,
                    "ScriptLocation": f"s3://{stack.manifest.artifacts_bucket}/{key}",
                },
                **extra,
            )
            with console.status(f"{command}: cold run…"):
                cold = timed_run(glue, f"bench_{command}", poll=0.05)
            warm = []
            for i in range(WARM_RUNS):
                with console.status(f"{command}: warm run {i + 1}/{WARM_RUNS}…"):
                    warm.append(timed_run(glue, f"bench_{command}", poll=0.05))
            median = statistics.median(warm)
            table.add_row(
                command, f"{cold:.2f}", f"{median:.2f}", ", ".join(f"{w:.2f}" for w in warm)
            )
            figures += [
                {"name": f"glue_{command}_cold_s", "unit": "s", "value": round(cold, 3)},
                {"name": f"glue_{command}_warm_s", "unit": "s", "value": round(median, 3)},
            ]
    console.print(table)
    console.print(f"written to {write_results('glue_overhead', figures)}")


if __name__ == "__main__":
    main()
