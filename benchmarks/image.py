"""Benchmark: images (issue 5), on the Debian test image of the test image server (127.0.0.1).

Three comparisons, each repeated (median of ``--repeat`` runs):

* **unpack** -- ``tar -xJf rootfs.tar.xz`` into an empty folder (``raw``), against what a container
  from a cached image costs us for its rootfs: the safe-unpack check of the cached archive (its
  remembered result, valid while the sha256 is the same) plus the GNU tar extraction that LXC's
  local template runs (``tar --anchored --numeric-owner -xpJf``). Limit: ours <= 1.1 x raw. The first
  check of a new archive (every member read once, then remembered) is printed too, as information.
* **cached image task** -- one ``lxcfleet.lxc.image`` task for an entry already in the cache (no
  request to the server; counted) against Ansible's floor (one ``ansible.builtin.ping`` task, the
  mean of two runs). Limit: ours <= 1.2 x ping.
* **container from the cache** -- one ``lxcfleet.lxc.container`` task (``image``, privileged,
  ``state: present``) against ``lxc-create -t local -- --fstree <cached rootfs.tar.xz> --metadata
  <the image's meta.tar.xz>`` with the same files, plus the Ansible floor (the module runs inside
  a playbook; lxc-create does not). Limit: ours <= 1.1 x (raw + ping).

Run as root with the project venv::

    /opt/lxcfleet-venv/bin/python benchmarks/image.py --repeat 3

Exit status: 0 when every run was done and verified (a FAIL ratio is printed, not an exit status),
1 when a run failed or could not be verified, 2 on a pre-flight error.
"""

import argparse
import importlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

from bench_common import BenchError, caller_env, log, ratio, run, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
VENV = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
SERVER = os.path.join(REPO, 'tests', 'testbed', 'image_server.py')
PREFIX = 'lfbimg'

LIMIT_UNPACK = 1.1
LIMIT_CACHED_TASK = 1.2
LIMIT_CREATE = 1.1


def ansible_env():
    base = caller_env()
    rc, out = run(['bash', '-c', '. "$1/scripts/env.sh" && env -0', 'env', REPO], env=base)
    env = dict(item.split('=', 1) for item in out.split('\0') if '=' in item)
    env.update({'ANSIBLE_CONFIG': os.path.join(HERE, 'ansible.cfg'), 'ANSIBLE_PIPELINING': 'True',
                'ANSIBLE_FORCE_COLOR': 'False', 'ANSIBLE_NOCOLOR': 'True'})
    env['PATH'] = os.path.join(VENV, 'bin') + os.pathsep + env.get('PATH', '')
    return env


def timed(argv, **kwargs):
    started = time.monotonic()
    rc, out = run(argv, **kwargs)
    return time.monotonic() - started, out


class Bench:
    def __init__(self, repeat):
        self.repeat = repeat
        self.work = tempfile.mkdtemp(prefix=PREFIX + '-')
        os.chmod(self.work, 0o755)
        # Rootfs trees and containers go to tmpfs when there is one: this machine's disk makes the
        # same tar -xJf take 5 to 20 s from run to run, which would drown the differences measured.
        shm = '/dev/shm' if os.path.isdir('/dev/shm') else None
        self.scratch = tempfile.mkdtemp(prefix=PREFIX + '-', dir=shm)
        self.lxc_path = os.path.join(self.scratch, 'lxc')
        os.makedirs(self.lxc_path)
        self.state = os.path.join(self.work, 'server.json')
        self.cache = os.path.join(self.work, 'cache')
        self.env = ansible_env()
        self.results = {}

    # ------------------------------------------------------------------ fixture

    def setup(self):
        rc, out = run(['/usr/bin/python3', SERVER, 'build', '--json'], timeout=1800)
        self.manifest = json.loads(out[out.index('{'):])
        rc, out = run(['/usr/bin/python3', SERVER, 'serve', '--daemon', '--cache', self.manifest['cache'],
                       '--state', self.state, '--tag', PREFIX])
        self.server = json.loads(out[out.index('{'):])
        debian = self.manifest['images']['debian']
        self.image = {
            'dist': 'debian', 'release': debian['release'], 'server': self.server['https_url'],
            'ca_path': self.manifest['ca'], 'keyring': self.manifest['keyring'], 'cache_dir': self.cache,
        }
        self.meta = debian['files']['meta.tar.xz']['path']
        # Fill the cache once (not timed) and check it is there.
        self.playbook('fill', [{'lxcfleet.lxc.image': dict(self.image, unprivileged=False)}])
        self.rootfs = os.path.join(self.cache, 'download', 'debian', debian['release'], 'amd64', 'default',
                                   'rootfs.tar.xz')
        if not os.path.isfile(self.rootfs):
            raise BenchError('the image task did not fill %s' % self.rootfs)

    def teardown(self):
        run(['/usr/bin/python3', SERVER, 'stop', '--state', self.state], check=False)
        for name in self.containers():
            run(['lxc-destroy', '-f', '-P', self.lxc_path, '-n', name], check=False)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def containers(self):
        if not os.path.isdir(self.lxc_path):
            return []
        return [n for n in os.listdir(self.lxc_path) if n.startswith(PREFIX)]

    def playbook(self, name, tasks):
        path = os.path.join(self.work, name + '.yml')
        play = [{'name': name, 'hosts': 'localhost', 'gather_facts': False,
                 'tasks': [dict(task, name=name) for task in tasks]}]
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(play, handle)
        seconds, out = timed(['ansible-playbook', '-i', 'localhost,', '-c', 'local', path], env=self.env, timeout=600)
        return seconds, out

    def requests(self):
        rc, out = run(['/usr/bin/python3', SERVER, 'count', '--log', self.server['request_log'], '--prefix', '/'])
        return int(out.strip().splitlines()[-1])

    # ------------------------------------------------------------------ runs

    def unpack(self):
        if COLLECTIONS not in sys.path:
            sys.path.insert(0, COLLECTIONS)
        unpack = importlib.import_module('ansible_collections.lxcfleet.lxc.plugins.module_utils._unpack')
        sidecar = unpack.sidecar_path(self.rootfs)
        if os.path.exists(sidecar):
            os.unlink(sidecar)
        started = time.monotonic()
        summary = unpack.checked_archive(self.rootfs, keep=True)
        self.results.setdefault('first_check', []).append(time.monotonic() - started)
        raw, ours = [], []
        for _repeat in range(self.repeat):
            dest = tempfile.mkdtemp(prefix='raw-', dir=self.scratch)
            os.sync()  # the writeback of the previous run must not land in this one
            seconds, _out = timed(['tar', '-xJf', self.rootfs, '-C', dest], timeout=600)
            raw.append(seconds)
            shutil.rmtree(dest)
            dest = tempfile.mkdtemp(prefix='ours-', dir=self.scratch)
            os.sync()
            started = time.monotonic()
            again = unpack.checked_archive(self.rootfs, keep=True)
            # the tar call of the collection's unpack template for a privileged container
            run(['tar', '--anchored', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', self.rootfs,
                 '-C', dest], timeout=600)
            ours.append(time.monotonic() - started)
            if again['sha256'] != summary['sha256'] or not os.path.isfile(os.path.join(dest, 'usr', 'bin', 'python3')):
                raise BenchError('unpack not verified')
            shutil.rmtree(dest)
        self.results['unpack_raw'] = raw
        self.results['unpack_ours'] = ours

    def cached_task(self):
        ping, ours = [], []
        before = self.requests()
        for _repeat in range(self.repeat):
            ping.append((self.playbook('ping1', [{'ansible.builtin.ping': {}}])[0]
                         + self.playbook('ping2', [{'ansible.builtin.ping': {}}])[0]) / 2)
            seconds, out = self.playbook('cached', [{'lxcfleet.lxc.image': dict(self.image, unprivileged=False)}])
            if 'changed=0' not in out:
                raise BenchError('the cached image task changed something:\n' + out[-2000:])
            ours.append(seconds)
        if self.requests() != before:
            raise BenchError('a cached image task made a request to the server')
        self.results['ping'] = ping
        self.results['cached_task'] = ours

    def create(self):
        raw, ours = [], []
        for i in range(self.repeat):
            name = '%s-raw%d' % (PREFIX, i)
            os.sync()
            seconds, _out = timed(['lxc-create', '-P', self.lxc_path, '-n', name, '-t', 'local', '--',
                                   '--fstree', self.rootfs, '--metadata', self.meta], timeout=600)
            raw.append(seconds)
            run(['lxc-destroy', '-f', '-P', self.lxc_path, '-n', name])
            name = '%s-ours%d' % (PREFIX, i)
            os.sync()
            seconds, out = self.playbook('create', [{'lxcfleet.lxc.container': {
                'name': name, 'lxc_path': self.lxc_path, 'image': self.image, 'unprivileged': False, 'state': 'present',
                'network': [{'type': 'empty'}]}}])
            if not os.path.isfile(os.path.join(self.lxc_path, name, 'rootfs/usr/bin/python3')) or 'changed=1' not in out:
                raise BenchError('container %s not created from the cache:\n%s' % (name, out[-2000:]))
            ours.append(seconds)
            run(['lxc-destroy', '-f', '-P', self.lxc_path, '-n', name])
        self.results['create_raw'] = raw
        self.results['create_ours'] = ours

    # ------------------------------------------------------------------ report

    def report(self):
        med = {k: statistics.median(v) for k, v in self.results.items()}
        rows = [
            ('unpack: tar -xJf (raw)', med['unpack_raw']),
            ('unpack: ours (remembered check + tar --xattrs -xpf)', med['unpack_ours']),
            ('unpack: first check of a new archive (info)', med['first_check']),
            ('ping floor (one task)', med['ping']),
            ('image task, cached, no request', med['cached_task']),
            ('lxc-create -t local (raw)', med['create_raw']),
            ('container task from the cache', med['create_ours']),
        ]
        print('\nimage benchmark, Debian test image, %d repeat(s), median seconds' % self.repeat)
        for label, value in rows:
            print('  %-48s %7.3f' % (label, value))
        checks = [
            ('unpack ours / raw', ratio(med['unpack_ours'], med['unpack_raw']), LIMIT_UNPACK),
            ('cached image task / ping', ratio(med['cached_task'], med['ping']), LIMIT_CACHED_TASK),
            ('container from cache / (lxc-create + ping)', ratio(med['create_ours'], med['create_raw'] + med['ping']),
             LIMIT_CREATE),
            ('container from cache / lxc-create (info)', ratio(med['create_ours'], med['create_raw']), None),
        ]
        for label, value, limit in checks:
            verdict = '' if limit is None else ('PASS' if value <= limit else 'FAIL') + ' (<= %.1f)' % limit
            print('  %-48s %7.3f %s' % (label, value, verdict))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        log('run as root')
        return 2
    signal.signal(signal.SIGTERM, terminate)
    bench = Bench(args.repeat)
    try:
        bench.setup()
        bench.unpack()
        bench.cached_task()
        bench.create()
        bench.report()
    except BenchError as exc:
        log('benchmark failed: %s' % exc)
        return 1
    finally:
        bench.teardown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
