"""The audit-hook guard every sandboxed interpreter installs before it runs a
program: the second line of defence described in `sandbox.runner`'s module doc.

It is Python source, sent to the interpreter as text, not imported here.
"""

from __future__ import annotations

# The guard (see the module doc), shared by every harness below. It expects the
# globals `scratch` (the working directory), `_violations` (a list it appends each
# refusal to) and `_secrets` (paths it refuses to read even inside Python's
# directories: the tests' data files).
GUARD = r"""
def _install_guard():
    realpath, isabs, join, fsdecode, sep = (
        os.path.realpath, os.path.isabs, os.path.join, os.fsdecode, os.sep
    )
    getpid = os.getpid
    python = {realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                     sys.base_exec_prefix) if p}
    readable = (scratch, "/proc/%d" % getpid(), "/usr/share/zoneinfo", *sorted(python))
    hidden = tuple(realpath(p) for p in _secrets)
    devices = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
    writing_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = {
        "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,),
        "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,), "os.chflags": (0,),
        "os.setxattr": (0,), "os.removexattr": (0,), "shutil.rmtree": (0,),
        "os.rename": (0, 1), "os.link": (0, 1), "os.symlink": (1,),
    }
    process_events = {
        "os.system", "subprocess.Popen", "os.fork", "os.forkpty", "os.exec",
        "os.posix_spawn", "os.spawn", "os.startfile", "pty.spawn",
    }
    network_events = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
    busy = []

    def resolve(path):
        path = fsdecode(path)
        return realpath(path if isabs(path) else join(os.getcwd(), path))

    def within(full, roots):
        return any(full == root or full.startswith(root.rstrip(sep) + sep) for root in roots)

    def inside(path):
        if isinstance(path, int) or path is None:
            return True
        full = resolve(path)
        return within(full, (scratch,)) or full == "/dev/null"

    def may_read(path):
        if isinstance(path, int) or path is None:
            return True
        full = resolve(path)
        return within(full, readable) or full in devices

    def unseen(path):
        return bool(hidden) and not isinstance(path, int) and path is not None and within(
            resolve(path), hidden
        )

    def deny(what):
        _violations.append(what)
        raise PermissionError("sandbox: " + what + " is not allowed")

    def hook(event, args):
        if busy:
            return
        busy.append(1)
        try:
            if event == "open":
                path, mode, flags = args
                writes = isinstance(mode, str) and any(c in mode for c in "wax+")
                if writes or (flags or 0) & writing_flags:
                    if not inside(path):
                        deny("writing %r outside the working directory" % (path,))
                elif unseen(path):
                    deny("reading %r, which is hidden from the program" % (path,))
                elif not may_read(path):
                    deny("reading %r outside the working directory and Python" % (path,))
            elif event == "sqlite3.connect":
                database = fsdecode(args[0])
                if database.startswith("file:"):
                    database = database[5:].split("?")[0]
                if not inside(database):
                    deny("opening the database %r outside the working directory" % (args[0],))
            elif event in path_events:
                for i in path_events[event]:
                    if not inside(args[i]):
                        deny("%s on %r outside the working directory" % (event, args[i]))
            elif event in process_events:
                deny("starting a process (%s)" % event)
            elif event in network_events:
                deny("network access (%s)" % event)
            elif event.startswith("ctypes."):
                deny("ctypes (%s)" % event)
            elif event == "resource.setrlimit":
                deny("changing resource limits")
            elif event in ("os.kill", "os.killpg") and args[0] not in (0, getpid()):
                deny("signalling another process")
        finally:
            busy.pop()

    sys.addaudithook(hook)


"""
