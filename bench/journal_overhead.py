"""What the embedded AWS's journal (src/musicpipe/stack/journal.py) costs a write, and how fast
a journal replays.

Two servers side by side on free ports: moto's own (``python -m moto.server``) and musicpipe's
journaling one. The same writes go to each, timed per kind: small and large S3 puts, a
multipart upload, a copy, DynamoDB puts and batch writes (the mix a pipeline run makes: Spark's
staging files, the archiver's copies, the KPI writer's batches). Then the journal is replayed
into a fresh server. Writes bench-results/journal.json.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_results
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicpipe.aws.local import LocalAws  # noqa: E402
from musicpipe.stack import journal  # noqa: E402
from musicpipe.stack.base import http_ok  # noqa: E402
from musicpipe.stack.preflight import free_ports  # noqa: E402

console = Console()


def start(cmd: list[str], endpoint: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not http_ok(endpoint + "/moto-api/"):
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{cmd} did not answer")
        time.sleep(0.1)
    return proc


def workload(endpoint: str) -> dict[str, float]:
    aws = LocalAws(endpoint)
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    s3.create_bucket(Bucket="bench-bucket")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    small, large, huge = os.urandom(20_000), os.urandom(4_000_000), os.urandom(40_000_000)
    kinds = {
        "S3 PutObject 20 KB (×300)": lambda i: s3.put_object(
            Bucket="bench-bucket", Key=f"s/{i}", Body=small
        ),
        "S3 PutObject 4 MB (×20)": lambda i: s3.put_object(
            Bucket="bench-bucket", Key=f"l/{i}", Body=large
        ),
        "S3 multipart 40 MB (×2)": lambda i: s3.upload_fileobj(
            io.BytesIO(huge), "bench-bucket", f"h/{i}"
        ),
        "S3 CopyObject 4 MB (×20)": lambda i: s3.copy_object(
            Bucket="bench-bucket",
            Key=f"c/{i}",
            CopySource={"Bucket": "bench-bucket", "Key": f"l/{i}"},
        ),
        "DynamoDB PutItem (×300)": lambda i: ddb.put_item(
            TableName="t", Item={"k": {"S": f"p{i}"}, "v": {"N": str(i)}}
        ),
        "DynamoDB BatchWriteItem 25 (×40)": lambda i: ddb.batch_write_item(
            RequestItems={
                "t": [
                    {"PutRequest": {"Item": {"k": {"S": f"b{i}-{j}"}, "v": {"S": "x" * 200}}}}
                    for j in range(25)
                ]
            }
        ),
    }
    counts = {k: int(k.rsplit("×", 1)[1].rstrip(")")) for k in kinds}
    timings = {}
    for name, call in kinds.items():
        started = time.perf_counter()
        for i in range(counts[name]):
            call(i)
        timings[name] = (time.perf_counter() - started) / counts[name] * 1000
    return timings


def main() -> None:
    plain_port, journal_port, replay_port = free_ports(3)
    with tempfile.TemporaryDirectory(prefix="musicpipe-journal-bench-") as tmp:
        path = Path(tmp) / "aws.journal"
        plain_ep = f"http://127.0.0.1:{plain_port}"
        journal_ep = f"http://127.0.0.1:{journal_port}"
        replay_ep = f"http://127.0.0.1:{replay_port}"
        plain = start([sys.executable, "-m", "moto.server", "-p", str(plain_port)], plain_ep)
        journaled = start(
            [sys.executable, "-m", "musicpipe.stack.journal", "-p", str(journal_port)]
            + ["--journal", str(path)],
            journal_ep,
        )
        try:
            journal.control(journal_ep, "new", {"base": None})
            # Alternate, so both servers see the same machine load.
            runs = {"moto": [], "journal": []}
            for _ in range(2):
                runs["moto"].append(workload(plain_ep))
                runs["journal"].append(workload(journal_ep))
                for ep in (plain_ep, journal_ep):
                    subprocess.run(
                        ["curl", "-s", "-X", "POST", ep + "/moto-api/reset"], check=False
                    )
                journal.control(journal_ep, "new", {"base": None})
            runs["journal"].append(workload(journal_ep))  # the journal replayed below
            scanned = journal.scan(path)
        finally:
            plain.kill()
            journaled.kill()
        fresh = start([sys.executable, "-m", "moto.server", "-p", str(replay_port)], replay_ep)
        try:
            # Into an empty server: the journal holds the bucket and table creation too.
            replayed = journal.replay(path, replay_ep, scanned.valid_length)
        finally:
            fresh.kill()

    table = Table(title="ms per write (best of 2 rounds)")
    for col in ("write", "moto", "journaling", "overhead"):
        table.add_column(col)
    figures = []
    for name in runs["moto"][0]:
        plain_ms = min(r[name] for r in runs["moto"])
        journal_ms = min(r[name] for r in runs["journal"][:2])
        table.add_row(
            name, f"{plain_ms:.2f}", f"{journal_ms:.2f}", f"{journal_ms - plain_ms:+.2f} ms"
        )
        figures.append({"name": f"journal overhead: {name}", "unit": "ms", "value": journal_ms})
    console.print(table)
    mb = scanned.valid_length / 1e6
    console.print(
        f"journal: {scanned.writes} writes, {mb:.1f} MB; replayed {replayed.applied} "
        f"({len(replayed.failed)} failed) in {replayed.seconds:.2f} s "
        f"({scanned.writes / replayed.seconds:.0f} writes/s)"
    )
    for failure in replayed.failed:
        console.print(f"replay failed: {failure}")
    figures.append({"name": "journal replay", "unit": "s", "value": replayed.seconds})
    console.print(f"wrote {write_results('journal', figures)}")


if __name__ == "__main__":
    main()
