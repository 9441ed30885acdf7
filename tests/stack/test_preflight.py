"""Clear errors before the stack starts: Java, Python, ports."""

from __future__ import annotations

import socket

import pytest

from musicpipe.stack.preflight import (
    PreflightError,
    check_java,
    check_port_free,
    check_python,
    free_ports,
    parse_java_major,
    port_in_use,
)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_parse_java_major(output, major):
    assert parse_java_major(output) == major


def test_java_missing_from_path(tmp_path):
    with pytest.raises(PreflightError, match="no `java` on PATH.*Java 17"):
        check_java({"PATH": str(tmp_path)})


def test_java_home_without_java(tmp_path):
    with pytest.raises(PreflightError, match=f"JAVA_HOME={tmp_path} has no bin/java"):
        check_java({"JAVA_HOME": str(tmp_path), "PATH": ""})


def test_old_java_is_refused(tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(PreflightError, match="is Java 8"):
        check_java({"JAVA_HOME": str(tmp_path), "PATH": ""})


def test_this_machine_has_java_17_or_newer():
    assert check_java() >= 17


def test_old_python_is_refused():
    with pytest.raises(PreflightError, match="Python 3.9.18 found; musicpipe needs Python 3.11"):
        check_python((3, 9, 18))
    check_python((3, 12, 1))


def test_port_taken_names_port_and_override():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PreflightError) as exc:
            check_port_free("127.0.0.1", port, "the AWS emulator", "MUSICPIPE_AWS_PORT")
    assert f"port {port}" in str(exc.value)
    assert "MUSICPIPE_AWS_PORT" in str(exc.value)


def test_free_ports_are_distinct_and_free():
    """Taken one after the other, the system may hand out one port twice (a CI run once got
    the same port for the Glue emulator and Airflow)."""
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert not any(port_in_use("127.0.0.1", p) for p in ports)
