"""The S3A jars' first download: two processes starting at once on a fresh machine fetch them
once, not twice into one ivy cache (which broke both downloads)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from musicpipe.glue import spark

# Stands in for spark-submit --packages: slow enough that the second process arrives while the
# first is fetching; it counts its calls and writes the two jars where ivy would.
FAKE_SPARK_SUBMIT = """\
#!/bin/sh
cache="$(printf '%s\\n' "$@" | sed -n 's/^spark.jars.ivy=//p')"
echo fetch >> "$cache/calls"
sleep 2
mkdir -p "$cache/jars"
: > "$cache/jars/org.apache.hadoop_hadoop-aws-3.3.4.jar"
: > "$cache/jars/com.amazonaws_aws-java-sdk-bundle-1.12.262.jar"
"""

FETCH = textwrap.dedent(
    """
    import sys
    from musicpipe.glue import spark
    spark.spark_submit = lambda spark_home=None: sys.argv[1]
    spark.hadoop_version = lambda: "3.3.4"
    print(len(spark.ensure_s3a_jars(log=lambda line: print(line, file=sys.stderr))))
    """
)


def test_two_processes_fetching_at_once_download_once_and_both_get_the_jars(tmp_path):
    fake = tmp_path / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(0o755)
    cache = tmp_path / "ivy"
    env = {"PATH": "/usr/bin:/bin", "MUSICPIPE_JAR_CACHE": str(cache)}
    both = [
        subprocess.Popen(
            [sys.executable, "-c", FETCH, str(fake)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [proc.communicate(timeout=120) for proc in both]
    assert [proc.returncode for proc in both] == [0, 0], results
    assert [out.strip() for out, _ in results] == ["2", "2"], results
    assert (cache / "calls").read_text() == "fetch\n"
    assert any("waiting for another process" in err for _, err in results), results


def test_a_finished_fetch_is_not_repeated(tmp_path, monkeypatch):
    jars = tmp_path / "ivy" / "jars"
    jars.mkdir(parents=True)
    wanted = [jars / "hadoop-aws-3.3.4.jar", jars / "aws-java-sdk-bundle-1.jar"]
    for jar in wanted:
        jar.write_bytes(b"")
    (tmp_path / "ivy" / "s3a-jars-3.3.4.json").write_text(
        "[" + ", ".join(f'"{j}"' for j in wanted) + "]"
    )
    monkeypatch.setenv("MUSICPIPE_JAR_CACHE", str(tmp_path / "ivy"))
    monkeypatch.setattr(spark, "hadoop_version", lambda: "3.3.4")
    monkeypatch.setattr(spark, "spark_submit", lambda spark_home=None: "/nonexistent/spark-submit")
    assert spark.ensure_s3a_jars(log=print) == [str(j) for j in wanted]
