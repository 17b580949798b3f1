"""The programs the sandboxed interpreters run, as source text: the harness of
`Sandbox.run`, and for `Sandbox.check` the program's process (it answers calls)
and the tests' process (it runs the tests and writes the verdict).

See "The verdict" in `sandbox.runner`'s module doc for why each piece is where it is.
"""

from __future__ import annotations

import inspect

from promptopt.sandbox import wire as sandbox_wire
from promptopt.sandbox.guard import GUARD

# The first code the sandboxed interpreter runs for `Sandbox.run`. It installs the
# guard, runs program.py from the scratch directory in a fresh namespace, writes
# one tagged JSON line per report to stdout (informational only), and its one
# outcome record to the verdict pipe (see "The verdict" in the module doc).
_HARNESS_HEAD = r"""
import gc, json, os, sys
scratch, nonce, guarded = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
verdict_fd, token_fd, harness_pid = int(sys.argv[4]), int(sys.argv[5]), os.getpid()
os.set_inheritable(verdict_fd, False)
os.chdir(scratch)
_write, _dumps, _getpid, _violations, _secrets = os.write, json.dumps, os.getpid, [], ()


def _emit(kind, data):
    line = "\n" + nonce + _dumps({"kind": kind, **data}, default=repr) + "\n"
    try:
        _write(1, line.encode("utf-8", "replace"))
    except OSError:
        pass


def sandbox_report(**data):
    _emit("report", data)


"""
_HARNESS_MAIN = r"""
def _take_token():
    # The parent's per-run token, read and the pipe closed before the program runs;
    # from here on it is only a local of _main.
    token = os.read(token_fd, 64)
    os.close(token_fd)
    return token


def _main(token):
    status, message = "passed", ""
    try:
        with open("program.py", encoding="utf-8") as handle:
            source = handle.read()
        if guarded:
            _install_guard()
        namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
        namespace["sandbox_report"] = sandbox_report
        exec(compile(source, "program.py", "exec"), namespace)
    except AssertionError as exc:
        status, message = "failed", ("AssertionError: " + str(exc)).strip().rstrip(":")
    except MemoryError:
        namespace = None
        gc.collect()
        status, message = "memory", "MemoryError: the memory limit was reached"
    except SystemExit as exc:
        status, message = "error", "the program called exit(%s)" % (exc.code,)
    except BaseException as exc:
        status, message = "error", (type(exc).__name__ + ": " + str(exc)).strip().rstrip(":")
    if _violations:
        status = "blocked"
        message = message or ("sandbox: " + _violations[0] + " is not allowed")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if _getpid() != harness_pid:  # a process the program forked has no say in the verdict
        os._exit(1)
    record = {"status": status, "message": message[:500],
              "violations": [str(v)[:200] for v in _violations[:10]]}
    try:
        _write(verdict_fd, token + (_dumps(record) + "\n").encode("utf-8", "replace"))
    except BaseException:
        pass
    os._exit(0)


_main(_take_token())
"""
HARNESS = _HARNESS_HEAD + GUARD + _HARNESS_MAIN
# `Sandbox.check`, the program's process: it installs the guard, runs program.py
# (which only defines functions) in a fresh namespace, says on the answers pipe
# whether that worked, then answers each call the tests' process sends on the calls
# pipe with the return value or the exception's type and message, as plain data
# (`sandbox_wire`). Everything here is the program's to change: what it sends is
# only ever read as the program's answers, never as a verdict.
_SERVER_MAIN = r"""
import gc, sys
scratch, guarded = os.path.realpath(sys.argv[1]), sys.argv[2] == "1"
calls_fd, answers_fd = int(sys.argv[3]), int(sys.argv[4])
_secrets, _violations, _sent = tuple(sys.argv[5:]), [], [0]
for _fd in (calls_fd, answers_fd):
    os.set_inheritable(_fd, False)
os.chdir(scratch)
_write = os.write
"""
_SERVER_LOOP = r"""
def _text(exc):
    if isinstance(exc, SystemExit):
        return "the program called exit(%s)" % (exc.code,)
    try:
        return str(exc)[:2000]
    except BaseException:
        return ""


def _answer(message):
    message["violations"] = [str(v)[:200] for v in _violations[_sent[0]:][:10]]
    _sent[0] = len(_violations)
    write_all(answers_fd, dumps(message))


def _serve():
    namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    try:
        with open("program.py", encoding="utf-8") as handle:
            source = handle.read()
        if guarded:
            _install_guard()
        exec(compile(source, "program.py", "exec"), namespace)
        _answer({"ready": True})
    except MemoryError:
        namespace = None
        gc.collect()
        _answer({"ready": False, "raised": "MemoryError",
                 "message": "MemoryError: the memory limit was reached"})
        return
    except BaseException as exc:
        text = _text(exc)
        if not isinstance(exc, SystemExit):
            text = (type(exc).__name__ + ": " + text).strip().rstrip(":")
        _answer({"ready": False, "raised": type(exc).__name__, "message": text})
        return
    calls = LineReader(calls_fd)
    while True:
        line = calls.readline()
        if line is None:  # the tests are done
            return
        call = loads(line)
        value = None
        try:
            function = namespace.get(call["call"])
            if not callable(function):
                raise NameError("name %r is not defined" % (call["call"],))
            value = function(*decode(call["args"]), **decode(call["kwargs"]))
            try:
                answer = {"value": encode(value)}
            except WireError as exc:
                answer = {"raised": "TypeError", "message": "the function returned " + str(exc)}
        except MemoryError:
            value = None
            gc.collect()
            answer = {"raised": "MemoryError", "message": "the memory limit was reached"}
        except BaseException as exc:
            answer = {"raised": type(exc).__name__, "message": _text(exc)}
        value = None
        _answer(answer)


try:
    _serve()
except BaseException:
    pass
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.flush()
    except BaseException:
        pass
os._exit(0)
"""

# `Sandbox.check`, the tests' process: trusted test code, run with the same layers.
# It reads the run's token and the tests from a pipe the parent closes behind them,
# waits for the program's process to say it loaded, runs the tests with
# `sandbox_function(name)` standing for the program's function (each call goes to
# the other process; only data comes back), and writes its one outcome record to
# its verdict pipe, which only this process holds. "gone" says the program's
# process ended or stopped answering first: the parent then takes the status from
# how that process ended.
_TESTER_MAIN = r"""
import builtins, gc, sys
scratch, nonce, guarded = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
verdict_fd, input_fd, calls_fd, answers_fd = (int(a) for a in sys.argv[4:8])
_secrets, _violations, harness_pid = tuple(sys.argv[8:]), [], os.getpid()
for _fd in (verdict_fd, calls_fd, answers_fd):
    os.set_inheritable(_fd, False)
os.chdir(scratch)
_write, _dumps, _getpid = os.write, json.dumps, os.getpid
"""
_TESTER_RUN = r"""
class _ProgramGone(BaseException):
    # Not an Exception: a test's `except Exception` must not carry on without the program.
    pass


_state = {"gone": False, "violations": []}
_answers = LineReader(answers_fd)
_errors = {}


def _program_error(name, message):
    # The program's exception, rebuilt here as a fresh class with its type's name
    # (a subclass of the built-in exception of that name, when there is one, so a
    # test's `except ValueError` works as in one process); only its message is kept.
    name = str(name)[:100] or "Exception"
    kind = _errors.get(name)
    if kind is None:
        base = getattr(builtins, name, None)
        if not (isinstance(base, type) and issubclass(base, Exception)):
            base = Exception
        body = {"__str__": lambda self: str(self.args[0]) if self.args else "",
                "__module__": "program"}
        try:
            kind = type(name, (base,), body)
            kind("probe")
        except Exception:
            kind = type(name, (Exception,), body)
        _errors[name] = kind
    return kind(str(message)[:2000])


def _unreadable(why):
    return _program_error("ValueError", "the program's answer cannot be read: %s" % (why,))


def _receive():
    try:
        line = _answers.readline()
        message = None if line is None else loads(line)
    except WireError as exc:
        raise _unreadable(exc) from None
    if message is None:
        _state["gone"] = True
        raise _ProgramGone("the program's process ended before answering the tests")
    violations = message.get("violations")
    if type(violations) is list:
        _state["violations"].extend(str(v)[:200] for v in violations[:10])
    return message


def _call(name, args, kwargs):
    if _state["gone"]:
        raise _ProgramGone("the program's process ended before answering the tests")
    try:
        request = dumps({"call": name, "args": encode(list(args)), "kwargs": encode(kwargs)})
    except WireError as exc:
        raise TypeError("the tests passed a value that cannot be sent: %s" % (exc,)) from None
    try:
        write_all(calls_fd, request)
    except OSError:
        _state["gone"] = True
        raise _ProgramGone("the program's process ended before answering the tests") from None
    message = _receive()
    if "raised" in message:
        raise _program_error(message["raised"], message.get("message", ""))
    if "value" not in message:
        raise _unreadable("no value")
    try:
        return decode(message["value"])
    except (ValueError, TypeError) as exc:
        raise _unreadable(exc) from None


def sandbox_function(name):
    # What the tests call instead of the program's function `name`.
    def call(*args, **kwargs):
        return _call(name, args, kwargs)

    call.__name__ = call.__qualname__ = str(name)
    return call


def _undumpable():
    # Where there is no PID namespace, a process of the same user could open this
    # one's /proc entries (its pipes, its memory); a non-dumpable process's are root's.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except BaseException:
        pass


def _take_input():
    chunks = []
    while True:
        chunk = os.read(input_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(input_fd)
    token, _, tests = b"".join(chunks).partition(b"\n")
    return token, tests.decode("utf-8", "replace")


def _describe(exc):
    return (type(exc).__name__ + ": " + str(exc)).strip().rstrip(":")


def _main(token, tests):
    status, message = "passed", ""
    try:
        if guarded:
            _install_guard()
        loaded = _receive()
        if loaded.get("ready") is not True:
            raised = str(loaded.get("raised", ""))
            status = {"MemoryError": "memory", "AssertionError": "failed"}.get(raised, "error")
            message = str(loaded.get("message", "")) or "the program did not load"
        else:
            namespace = {"__name__": "__tests__", "__builtins__": __builtins__,
                         "sandbox_report": sandbox_report, "sandbox_function": sandbox_function}
            exec(compile(tests, "tests.py", "exec"), namespace)
    except _ProgramGone as exc:
        status, message = "error", str(exc)
    except AssertionError as exc:
        status, message = "failed", _describe(exc)
    except MemoryError:
        namespace = None
        gc.collect()
        status, message = "memory", "MemoryError: the memory limit was reached"
    except SystemExit as exc:
        status, message = "error", "the tests called exit(%s)" % (exc.code,)
    except BaseException as exc:
        status, message = "error", _describe(exc)
    violations = _state["violations"] + [str(v)[:200] for v in _violations]
    if violations:
        status = "blocked"
        message = message or ("sandbox: " + violations[0] + " is not allowed")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if _getpid() != harness_pid:
        os._exit(1)
    record = {"status": status, "message": message[:500], "violations": violations[:10],
              "gone": bool(_state["gone"])}
    try:
        _write(verdict_fd, token + (_dumps(record) + "\n").encode("utf-8", "replace"))
    except BaseException:
        pass
    os._exit(0)


_undumpable()
_main(*_take_input())
"""
_WIRE = inspect.getsource(sandbox_wire)
SERVER = _WIRE + _SERVER_MAIN + GUARD + _SERVER_LOOP
_EMIT = _HARNESS_HEAD[_HARNESS_HEAD.index("def _emit") :]
TESTER = _WIRE + _TESTER_MAIN + _EMIT + GUARD + _TESTER_RUN
