"""Child processes of the dev environment: start with a log file, wait, stop by pid.

Why this exists: every server here (etcd, the Kubernetes components, KWOK, SeaweedFS,
Prometheus) is a plain local process. Tests need three guarantees from them: a startup
failure is reported with the component's own log (not a bare timeout), readiness is
polled instead of slept for, and nothing outlives the test session, even when the
Python process is killed (the children get SIGTERM through ``PR_SET_PDEATHSIG``).

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the
process: a component restarted from a worker thread (the chaos run restarts the API
server from one) got SIGTERM the moment that thread finished. So every child is forked
by one spawner thread that lives as long as the interpreter (:data:`_SPAWNER`).
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Self, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
#: The one thread that forks children: it lives until the interpreter exits, so the
#: parent-death signal means "the test process is gone", whichever thread asked.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devenv-spawner")


class ComponentError(RuntimeError):
    """A component failed to start or become ready; the message has its log tail."""


#: Ports :func:`free_port` handed out in this process.
_GIVEN_PORTS: set[int] = set()


def free_port(host: str = "0.0.0.0") -> int:
    """Return a TCP port that is free right now on every address (the kernel picks it), so
    clusters coexist; never one handed out before in this process, because the kernel may
    offer a just-closed port again before its first taker binds it (an API server and its
    etcd were once given the same one)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    with contextlib.suppress(OSError):  # no glibc: the child just won't follow us out
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class FileLock:
    """An exclusive ``flock`` on a file, for what one machine has only one of (the
    image store, the node's network): held from :meth:`acquire` to :meth:`release`,
    and by the kernel only as long as this process lives."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the lock; then raise, naming ``what``."""
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("w")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    file.close()
                    raise ComponentError(
                        f"{self.what} is in use by another test session or dev cluster "
                        f"for over {timeout:.0f}s ({self.path})"
                    ) from None
                time.sleep(1)
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (or a note that there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class Process:
    """One started component: its name, command, pid and log file."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_file: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = [str(a) for a in args]
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            out.write(f"$ {' '.join(self.args)}\n".encode())
            out.flush()
            self.popen = _SPAWNER.submit(
                subprocess.Popen,
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            ).result()

    @property
    def pid(self) -> int:
        """Process id of the component."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def failure(self, what: str) -> ComponentError:
        """An error naming the component, what went wrong and the tail of its log."""
        code = self.popen.poll()
        state = "still running" if code is None else f"exited with code {code}"
        return ComponentError(
            f"{self.name} {what} ({state}, pid {self.pid}).\n"
            f"command: {' '.join(self.args)}\n"
            f"--- last lines of {self.log_file} ---\n{log_tail(self.log_file)}"
        )

    def kill(self) -> None:
        """SIGKILL the process's session at once: no cleanup, as when a machine dies."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process (its session), then SIGKILL if it does not exit in time."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)


def wait_for(
    proc: Process,
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.1,
) -> T:
    """Poll ``check`` until it returns a value other than None/False.

    Fails fast with the component's log when the process exits, and with the log and
    ``what`` on timeout. Exceptions from ``check`` count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if not proc.alive():
            raise proc.failure(f"exited while waiting until {what}")
        try:
            value = check()
        except Exception as e:  # not ready yet: connection refused, 5xx, ...
            last_error = e
            value = None
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            err = proc.failure(f"did not become ready within {timeout:.0f}s ({what})")
            if last_error is not None:
                err.args = (f"{err.args[0]}\nlast check error: {last_error!r}",)
            raise err
        time.sleep(interval)


def poll(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Poll ``check`` until it returns a value other than None/False; return it.

    For waiting on cluster state in tests (instead of sleeping): raises
    :class:`TimeoutError` naming ``what`` and the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            last = value
        except Exception as e:  # transient API errors count as "not yet"
            value, last = None, e
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting until {what} (last: {last!r})"
            )
        time.sleep(interval)


class LocalServer(abc.ABC):
    """Base of single-process servers (S3, Prometheus): workdir, context manager, stop.

    Subclasses implement :meth:`start` and set ``self.proc``; :meth:`stop` kills the
    process by pid and removes the work directory when it was created here.
    """

    def __init__(self, workdir: Path | None, prefix: str) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=prefix))
        self.proc: Process | None = None

    @abc.abstractmethod
    def start(self, timeout: float = 60.0) -> Self:
        """Start the server and wait until it is ready."""

    def _run_until_ready(
        self,
        name: str,
        args: Sequence[str],
        ready: Callable[[], object],
        what: str,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> float:
        """Start ``args`` as the server's process (log ``<name>.log`` in the work
        directory) and wait until ``ready`` holds; return the seconds that took. A
        server that never gets ready is stopped, not left behind."""
        started = time.monotonic()
        self.proc = Process(name, args, self.workdir / f"{name}.log", env=env, cwd=self.workdir)
        try:
            wait_for(self.proc, ready, what=what, timeout=timeout)
        except BaseException:
            self.proc.stop()
            raise
        return time.monotonic() - started

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server by pid and remove its data (when the directory is ours)."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
