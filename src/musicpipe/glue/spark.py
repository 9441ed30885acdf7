"""How a glueetl job runs locally: pip's pyspark, with S3 through S3A.

pip's pyspark has no hadoop-aws. It comes from Maven Central at the Hadoop version bundled in
pyspark (hadoop-aws pulls the matching AWS SDK bundle, a few hundred MB), resolved once into a
cache shared by every state folder and then passed to each run with --jars.

In the Compose stack the emulator runs inside the AWS Glue 5 libs image and uses that image's
own Spark and jars: ``MUSICPIPE_SPARK_HOME`` names the Spark installation and
``MUSICPIPE_S3A_JARS`` the jars (comma-separated globs) to pass instead of downloading any.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from musicpipe.aws.local import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from musicpipe.processes import one_at_a_time


def _pyspark_home() -> Path:
    # Found, not imported: importing pyspark takes about a second, and every CLI command
    # imports this module (through the embedded stack).
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ImportError("pyspark is not installed: run `make install`")
    return Path(spec.origin).parent


SPARK_HOME = Path(os.environ.get("MUSICPIPE_SPARK_HOME") or _pyspark_home())
S3A_JARS_ENV = "MUSICPIPE_S3A_JARS"
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.s3a.name = org.apache.hadoop.fs.s3a
logger.s3a.level = error
logger.metrics.name = org.apache.hadoop.metrics2
logger.metrics.level = error
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
"""


class SparkSetupError(RuntimeError):
    """Spark or its S3A jars are not usable; the message says what to do."""


def hadoop_version() -> str:
    """The Hadoop version inside pip's pyspark (from its hadoop-client-api jar)."""
    return hadoop_version_of(SPARK_HOME)


def hadoop_version_of(spark_home: Path) -> str:
    for jar in (spark_home / "jars").glob("hadoop-client-api-*.jar"):
        match = re.match(r"hadoop-client-api-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    raise SparkSetupError(f"no hadoop-client-api jar in {spark_home / 'jars'}; reinstall pyspark")


def jar_cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musicpipe" / "ivy"
    return Path(os.environ.get("MUSICPIPE_JAR_CACHE", default))


def spark_submit(spark_home: Path | None = None) -> str:
    return str((spark_home or SPARK_HOME) / "bin" / "spark-submit")


def provided_jars(globs: str) -> list[str]:
    """The jars that ``MUSICPIPE_S3A_JARS`` names; each glob must match."""
    jars = []
    for pattern in (g.strip() for g in globs.split(",") if g.strip()):
        found = sorted(str(p) for p in Path("/").glob(pattern.lstrip("/")))
        if not found:
            raise SparkSetupError(f"{S3A_JARS_ENV}: no jar matches {pattern}")
        jars += found
    return jars


def ensure_s3a_jars(
    log: Callable[[str], None] = print, spark_home: Path | None = None
) -> list[str]:
    """Paths of hadoop-aws and its AWS SDK bundle, downloading them the first time (or the
    ones ``MUSICPIPE_S3A_JARS`` names); for ``spark_home``'s Hadoop (a Glue version's own
    Spark, glue.runtimes), else the installed pyspark's."""
    if spark_home is None and os.environ.get(S3A_JARS_ENV):
        return provided_jars(os.environ[S3A_JARS_ENV])
    version = hadoop_version() if spark_home is None else hadoop_version_of(spark_home)
    # Another Spark's jars in an ivy cache of their own: ivy's jars/ folder holds every
    # version it resolved, and a run must get one hadoop-aws.
    cache = jar_cache() if spark_home is None else jar_cache() / f"hadoop-{version}"
    marker = cache / f"s3a-jars-{version}.json"
    if (ready := _cached_jars(marker)) is not None:
        return ready
    # Two processes fetching into one ivy cache at once break each other's download (seen
    # with `up` and a test starting together on a fresh machine): one fetches, the other
    # waits for it and takes its jars.
    with one_at_a_time(
        cache,
        lambda: log(f"S3A jars: waiting for another process fetching them into {cache}"),
    ):
        if (ready := _cached_jars(marker)) is not None:
            return ready
        return _fetch_s3a_jars(cache, version, marker, log, spark_home)


def _cached_jars(marker: Path) -> list[str] | None:
    if marker.exists():
        jars = json.loads(marker.read_text())
        if all(Path(j).is_file() for j in jars):
            return jars
    return None


def _fetch_s3a_jars(
    cache: Path,
    version: str,
    marker: Path,
    log: Callable[[str], None],
    spark_home: Path | None = None,
) -> list[str]:
    package = f"org.apache.hadoop:hadoop-aws:{version}"
    log(
        f"S3A jars: downloading {package} and the AWS SDK bundle it needs (about 300 MB, "
        f"once) from Maven Central into {cache}"
    )
    noop = cache / "resolve_only.py"
    noop.write_text("# resolves --packages, then exits\n")
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as errors:
        resolver = subprocess.Popen(
            [
                spark_submit(spark_home),
                "--master",
                "local[1]",
                "--conf",
                f"spark.jars.ivy={cache}",
                "--packages",
                package,
                str(noop),
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
            env={
                **os.environ,
                "PYSPARK_PYTHON": sys.executable,
                "SPARK_HOME": str(spark_home or SPARK_HOME),
            },
        )
        # A progress line every few seconds: 300 MB is minutes on a slow link, and a silent
        # wait that long looks hung.
        while True:
            try:
                returncode = resolver.wait(timeout=3)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - started > 1800:
                    resolver.kill()
                    resolver.wait()
                    returncode = -1
                    break
                log(f"S3A jars: {_megabytes(cache / 'cache'):.0f} MB of about 300 MB so far")
        errors.seek(0)
        stderr = errors.read()
    jars = sorted(str(p) for p in (cache / "jars").glob("*.jar"))
    # Hadoop 3.3 pulls the AWS SDK v1 bundle, 3.4 the v2 one (software.amazon.awssdk:bundle).
    wanted = [
        j
        for j in jars
        if re.search(r"(hadoop-aws-|aws-java-sdk-bundle-|software\.amazon\.awssdk_bundle-)", j)
    ]
    if returncode != 0 or len(wanted) < 2:
        tail = "\n".join(stderr.splitlines()[-15:])
        raise SparkSetupError(
            f"could not fetch {package} from Maven Central (spark-submit exit "
            f"{returncode}). Check that Maven Central is reachable.\n{tail}"
        )
    marker.write_text(json.dumps(wanted))
    log(
        f"S3A jars: ready in {time.monotonic() - started:.0f} s: "
        + ", ".join(Path(j).name for j in wanted)
    )
    return wanted


def _megabytes(folder: Path) -> float:
    """What ivy has downloaded so far (its cache/ folder; jars/ holds copies made at the end)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def spark_defaults() -> dict[str, str]:
    """``$SPARK_HOME/conf/spark-defaults.conf`` as a dict: the Glue 5 image ships one (pip's
    pyspark does not). A --conf on the command line replaces a default of the same key."""
    path = SPARK_HOME / "conf" / "spark-defaults.conf"
    if not path.is_file():
        return {}
    pairs = (line.strip().split(None, 1) for line in path.read_text().splitlines())
    return {p[0]: p[1] if len(p) > 1 else "" for p in pairs if p and not p[0].startswith("#")}


def log4j_config(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "log4j2.properties"
    if not path.exists() or path.read_text() != LOG4J2:
        path.write_text(LOG4J2)
    return path


def s3a_conf(endpoint: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """Hadoop settings that make s3:// and s3a:// paths reach the local S3 endpoint."""
    s3a = "org.apache.hadoop.fs.s3a.S3AFileSystem"
    return {
        "spark.hadoop.fs.s3.impl": s3a,
        "spark.hadoop.fs.s3a.impl": s3a,
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
        "spark.hadoop.fs.s3a.access.key": access_key,
        "spark.hadoop.fs.s3a.secret.key": secret_key,
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        # Commit task output with one rename, not two: on S3 a rename is a copy and a delete.
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "2",
        # moto answers quickly or not at all: fail fast instead of retrying for minutes.
        "spark.hadoop.fs.s3a.attempts.maximum": "3",
        "spark.hadoop.fs.s3a.retry.limit": "3",
        "spark.hadoop.fs.s3a.connection.establish.timeout": "5000",
    }


def submit_args(
    *,
    job_name: str,
    jars: list[str],
    py_files: list[Path],
    conf: dict[str, str],
    log4j: Path,
) -> str:
    """PYSPARK_SUBMIT_ARGS for a driver started as `python script.py …`.

    The script runs as its own Python process (not under spark-submit, whose Python runner
    folds the script's stderr into stdout), and pyspark launches the JVM with these arguments
    when the script builds its SparkSession. So print() goes to the output log and a
    traceback to the error log, as on Glue.
    """
    master = os.environ.get("MUSICPIPE_SPARK_MASTER", "local[*]")
    memory = os.environ.get("MUSICPIPE_SPARK_DRIVER_MEMORY", "2g")
    # Spark's default of 200 shuffle partitions suits a cluster; on a laptop each shuffle
    # would run 200 tiny tasks. Glue sizes this from its workers; we size it from the cores.
    partitions = os.environ.get(
        "MUSICPIPE_SPARK_SHUFFLE_PARTITIONS", str(max(4, 2 * (os.cpu_count() or 2)))
    )
    all_conf = {
        # Glue runs Spark in UTC.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": partitions,
        "spark.default.parallelism": partitions,
        "spark.ui.enabled": "false",
        # Added to the installation's own options (Glue's image sets some), not in their place;
        # for a repeated -D property the last one wins.
        "spark.driver.extraJavaOptions": " ".join(
            filter(
                None,
                [
                    spark_defaults().get("spark.driver.extraJavaOptions", ""),
                    f"-Dlog4j2.configurationFile=file:{log4j}",
                ],
            )
        ),
        **conf,
    }
    args = ["--master", master, "--name", job_name, "--driver-memory", memory]
    if jars:
        args += ["--jars", ",".join(jars)]
    for key, value in all_conf.items():
        args += ["--conf", f"{key}={value}"]
    if py_files:
        args += ["--py-files", ",".join(str(p) for p in py_files)]
    return shlex.join([*args, "pyspark-shell"])


@dataclass(frozen=True)
class GlueEtlSpark:
    """How a glueetl driver is wired, in one place: the emulator's runs and `musicpipe pyspark`
    both start their drivers from this, so the shell sees exactly what a run sees."""

    jars: list[str]
    conf: dict[str, str]
    log4j: Path

    @staticmethod
    def env(python: str = sys.executable) -> dict[str, str]:
        """What the driver's process (and the JVM it starts) needs in its environment."""
        return {
            "PYSPARK_PYTHON": python,
            "PYSPARK_DRIVER_PYTHON": python,
            # The driver, its block manager and its UI bind to loopback only.
            "SPARK_LOCAL_IP": "127.0.0.1",
        }

    def submit_args(
        self, job_name: str, py_files: list[Path], extra_conf: dict[str, str] | None = None
    ) -> str:
        return submit_args(
            job_name=job_name,
            jars=self.jars,
            py_files=py_files,
            conf={**self.conf, **(extra_conf or {})},
            log4j=self.log4j,
        )


def glueetl_spark(
    aws_endpoint: str,
    region: str,
    state_dir: Path,
    log: Callable[[str], None] = print,
    spark_home: Path | None = None,
) -> GlueEtlSpark:
    """The S3A jars (fetched once, for ``spark_home``'s Hadoop when it is another Spark), S3
    through S3A to ``aws_endpoint`` with the dummy credentials, and Spark's logging config
    written into ``state_dir``."""
    return GlueEtlSpark(
        jars=ensure_s3a_jars(log=log, spark_home=spark_home),
        conf=s3a_conf(aws_endpoint, DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY, region),
        log4j=log4j_config(state_dir),
    )


def ui_conf(port: int) -> dict[str, str]:
    """A live Spark UI on ``port`` (loopback, through SPARK_LOCAL_IP)."""
    return {"spark.ui.enabled": "true", "spark.ui.port": str(port)}


def free_port() -> int:
    """A port nothing listens on now, for a Spark UI whose URL must be known before it starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
