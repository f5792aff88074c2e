"""Cell leases: which process runs a cell now, so that each cell runs once.

Several processes can work on one study folder: plain runs started twice, a
chief and its workers, a chief restarted under live workers. They agree
through the folder alone. A lease is a small JSON file,
`DIR/leases/<cell key>.json`, written when the cell is handed out (by the
process's own oracle, or by the chief for a worker). The process that runs
the cell adopts it (writes its host and pid) and touches its modification
time every few seconds. The lease is live while that heartbeat is younger
than the lease timeout and, when its holder is a process on this machine,
while that process exists. A killed worker's cell is handed out again after
the timeout (at once, when it died on this machine).

Taking, adopting and finishing a lease happen under one lock file
(`leases/.lock`, `flock`), so two processes never both take a cell, and a
process whose lease was taken over (it stopped heartbeating for longer than
the timeout) does not record its result. Heartbeats need no lock.

Leases assume the machines' clocks agree to well within the timeout.
"""

import contextlib
import json
import os
import socket
import threading
import time

try:
    import fcntl
except ImportError:  # Windows: one process per folder is safe, sharing is not
    fcntl = None

from studies import folder

DEFAULT_TIMEOUT = 180.0


def _stat(pid):
    """`(state, start time)` of a process from /proc (the start time in clock
    ticks since boot tells a live pid from a reused one); None where /proc
    does not say."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # the command name (field 2) may hold spaces; fields after ")"
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _start_time(pid):
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _process_gone(pid, started):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    stat = _stat(pid)
    if stat is None:
        return False
    state, start = stat
    # a killed process its parent has not reaped yet is a zombie: gone
    return state in ("Z", "X") or (started is not None and start != started)


def _host():
    """This machine, as processes that can see each other's pids know it: the
    hostname, the boot, and the pid namespace (containers can share a
    hostname, not a pid namespace)."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            parts.append(f.read().strip()[:8])
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return ".".join(parts)


HOST = _host()


@contextlib.contextmanager
def locked(path):
    """Holds an exclusive `flock` on the file `path` (made if missing)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


class Leases:
    """The leases of one study folder.

    Args:
        study_dir: The study folder.
        timeout: Seconds without a heartbeat after which a lease is dead.
    """

    def __init__(self, study_dir, timeout=DEFAULT_TIMEOUT):
        self.folder = folder.leases_dir(study_dir)
        self.timeout = float(timeout)
        self.interval = min(self.timeout / 4, 30.0)

    def _path(self, key):
        return folder.json_path(self.folder, key)

    def locked(self):
        """Holds the folder's lease lock (one process at a time)."""
        return locked(os.path.join(self.folder, folder.LEASE_LOCK))

    def read(self, key):
        """The lease of `key` with its `age` in seconds, or None."""
        path = self._path(key)
        try:
            age = time.time() - os.stat(path).st_mtime
            with open(path) as f:
                lease = json.load(f)
        except (OSError, ValueError):
            return None
        return {**lease, "age": age}

    def is_live(self, lease):
        if lease is None:
            return False
        # the holder's heartbeat follows its own timeout, if longer than ours
        if lease["age"] >= max(self.timeout, lease.get("timeout", 0.0)):
            return False
        if lease.get("host") == HOST and lease.get("pid"):
            return not _process_gone(lease["pid"], lease.get("started"))
        return True

    def live(self):
        """Every live lease, keyed by cell key."""
        leases = {}
        for key in folder.json_keys(self.folder):
            lease = self.read(key)
            if self.is_live(lease):
                leases[key] = lease
        return leases

    def _write(self, key, lease):
        # under the lock; a lease means nothing once its writer is gone, so
        # the folder need not be synced for it to survive a machine crash
        folder.write(self._path(key), json.dumps(lease), sync_folder=False)

    def take(self, key, holder, trial_id, pending, here=False):
        """Takes the lease of `key` for `holder` unless a live one exists.

        Args:
            key: The cell key.
            holder: Who will run it (a Keras Tuner tuner id).
            trial_id: The trial it is handed out as.
            pending: Called under the lock: whether the cell still needs a run
                (a record written since the caller looked makes it False).
            here: The holder is this process (a plain run), so the lease
                names it from the start: killed before it adopts the lease,
                its cell is free at once, not after the timeout.

        Returns:
            `(taken, previous)`: whether the lease is now `holder`'s, and the
            dead lease it replaced (None if there was none).
        """
        with self.locked():
            previous = self.read(key)
            if self.is_live(previous) or not pending():
                return False, None
            lease = {"cell": key, "holder": holder, "trial_id": trial_id}
            if here:
                lease.update(_this_process(), timeout=self.timeout)
            self._write(key, lease)
            return True, previous

    def adopt(self, key, holder, trial_id):
        """Starts running `key` under the lease handed out to `holder` as
        `trial_id`: records this process in it and starts its heartbeat.

        Returns:
            A started `Heartbeat`, or None if the lease is not (or no longer)
            `holder`'s for this trial.
        """
        with self.locked():
            lease = self.read(key)
            if not _owns(lease, holder, trial_id) or lease["age"] >= self.timeout:
                return None
            lease.pop("age")
            self._write(key, {**lease, **_this_process(), "timeout": self.timeout})
        heartbeat = Heartbeat(self, key, holder, trial_id)
        heartbeat.start()
        return heartbeat

    def finish(self, heartbeat, record):
        """Calls `record()` and drops the lease, if the lease is still the
        heartbeat's; else does nothing (another process runs the cell now).

        Returns:
            Whether `record()` was called.
        """
        heartbeat.stop()
        with self.locked():
            if not _owns(
                self.read(heartbeat.key), heartbeat.holder, heartbeat.trial_id
            ):
                return False
            record()
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path(heartbeat.key))
            return True

    def release(self, heartbeat):
        """Drops the lease unrecorded (the run was interrupted), if it is ours."""
        heartbeat.stop()
        with self.locked():
            if _owns(self.read(heartbeat.key), heartbeat.holder, heartbeat.trial_id):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._path(heartbeat.key))


def _this_process():
    return {"host": HOST, "pid": os.getpid(), "started": _start_time(os.getpid())}


def _owns(lease, holder, trial_id):
    return (
        lease is not None
        and lease.get("holder") == holder
        and lease.get("trial_id") == trial_id
    )


class Heartbeat(threading.Thread):
    """Touches a lease every `leases.interval` seconds until stopped; notices
    (`lost`) when the lease was taken over."""

    def __init__(self, leases, key, holder, trial_id):
        super().__init__(daemon=True, name=f"lease {key}")
        self.leases = leases
        self.key = key
        self.holder = holder
        self.trial_id = trial_id
        self.lost = False
        self._stop_event = threading.Event()

    def run(self):
        path = self.leases._path(self.key)
        while not self._stop_event.wait(self.leases.interval):
            lease = self.leases.read(self.key)
            if lease is None and os.path.exists(path):
                continue  # caught mid-replace, or a passing read error: next beat
            if not _owns(lease, self.holder, self.trial_id):
                self.lost = True
                return
            with contextlib.suppress(OSError):
                os.utime(path)

    def stop(self):
        self._stop_event.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join()
