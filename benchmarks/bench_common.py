"""Helpers shared by the benchmarks (run.py, nat.py, image.py, connection.py, fleet.py): running commands,
locking, forming ratios, the guarded measure-then-clean-up flow and the report output."""

import fcntl
import json
import os
import signal
import subprocess
import sys


class BenchError(Exception):
    """A run failed or could not be verified: the figures of this run are not valid."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def tail(text, lines=40):
    return '\n'.join((text or '').rstrip().splitlines()[-lines:])


def run(argv, check=True, timeout=120, env=None, cwd=None):
    """Run argv (a list), capture output; the child gets its own session so it can be killed."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
        raise BenchError('timed out after %ss: %s\n%s' % (timeout, ' '.join(argv), tail(out)))
    except BaseException:
        # interrupted (SIGINT/SIGTERM): stop the child we started before cleaning up
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    if check and proc.returncode != 0:
        raise BenchError('exit %d: %s\n%s' % (proc.returncode, ' '.join(argv), tail(out)))
    return proc.returncode, out


# PYTHONUNBUFFERED makes CPython read a script given on stdin one byte per read(2): Ansible's
# pipelining hands each module to python3 on stdin, so with it set (some agent and CI shells export
# it) a module costs about 0.4 ms more per KB of payload. On the local connection the module inherits
# the controller's environment; over SSH it never sees it. Benchmarks measure what a user gets.
UNSHARED = ('PYTHONUNBUFFERED',)


def caller_env(drop=()):
    """os.environ without ANSIBLE_* settings, UNSHARED and the names in drop: the base of every run."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith('ANSIBLE_') and k not in UNSHARED and k not in drop}


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def terminate(signum, frame):
    """Signal handler: turn SIGTERM into KeyboardInterrupt, so cleanup code runs."""
    raise KeyboardInterrupt('signal %d' % signum)


def take_lock(path, tag):
    """An exclusive lock on path, held while the returned file stays open; None (logged) if another run holds it."""
    handle = open(path, 'w', encoding='ascii')  # pylint: disable=consider-using-with
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        log('%s: another run holds %s' % (tag, path))
        return None
    return handle


def measure_guarded(body, cleanup, report, tag):
    """body(), then cleanup() in any case; a BenchError or an interrupt (SIGINT, or SIGTERM through
    terminate) is logged and kept in report['error']. Returns the exit status: 0, or 1 on any error."""
    status = 0
    try:
        body()
    except BenchError as exc:
        log('%s: ERROR: %s' % (tag, exc))
        report['error'] = str(exc)
        status = 1
    except KeyboardInterrupt as exc:
        log('%s: interrupted (%s)' % (tag, exc or 'SIGINT'))
        report['error'] = 'interrupted'
        status = 1
    finally:
        try:
            cleanup()
        except BenchError as exc:
            log('%s: ERROR during cleanup: %s' % (tag, exc))
            status = 1
    return status


def emit(report, status, as_json, print_text):
    """Print the report (JSON on stdout, or print_text(report) and the error) and return status."""
    report['exit_status'] = status
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_text(report)
        if status:
            print('\nERROR: %s' % report.get('error', 'see above'))
    return status
