from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from devstack import process


def test_a_listening_port_is_in_use_and_a_closed_one_is_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert process.port_in_use("127.0.0.1", port)
        assert process.port_open("127.0.0.1", port)
    assert not process.port_in_use("127.0.0.1", port)
    assert not process.port_open("127.0.0.1", port)


def test_an_exited_unreaped_child_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while process.pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.pid_alive(child.pid)


def test_spawned_server_is_found_by_pid_file_and_stopped_with_sigterm(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    log = tmp_path / "logs" / "srv.log"
    pid_file = tmp_path / "srv.pid"
    code = f"import time; print('hello', flush=True); time.sleep(60)  # {marker}"
    pid = process.spawn([sys.executable, "-c", code], log, pid_file)
    try:
        assert process.owned_pid(pid_file, marker) == pid
        assert process.owned_pid(pid_file, "something-else") is None
        deadline = time.monotonic() + 10
        while "hello" not in process.tail(log) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hello" in process.tail(log)
    finally:
        assert process.stop(pid, timeout=10)
    assert process.owned_pid(pid_file, marker) is None


def test_a_process_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pid = process.spawn([sys.executable, "-c", code], tmp_path / "x.log", tmp_path / "x.pid")
    time.sleep(0.5)  # let it install the handler
    assert process.stop(pid, timeout=0.5) is False
    assert not process.pid_alive(pid)


def test_run_logged_reports_exit_code_and_output_tail(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    code, output = process.run_logged(
        [sys.executable, "-c", "print('step 1'); raise SystemExit(3)"], log
    )
    assert code == 3
    assert "step 1" in output
    assert "step 1" in log.read_text()


def test_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert process.tail(tmp_path / "nope.log") == ""
    (tmp_path / "a.log").write_text("\n".join(str(i) for i in range(100)))
    assert process.tail(tmp_path / "a.log", 3) == "97\n98\n99"
