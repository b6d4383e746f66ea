"""Helpers shared by the benchmarks (run.py, nat.py): running commands and forming ratios."""

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


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def terminate(signum, frame):
    """Signal handler: turn SIGTERM into KeyboardInterrupt, so cleanup code runs."""
    raise KeyboardInterrupt('signal %d' % signum)
