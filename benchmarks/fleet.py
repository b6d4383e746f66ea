"""Benchmark "fleets in seconds" (issue 7): create and start N Debian containers (default 20) from one
cached image, by the clone path and by unpacking each, in one run:

* ``ours_clone``      -- ``lxcfleet.lxc.container`` in a loop of N with ``image`` and ``base: {}`` (one stopped
  base container from the image, every container an overlayfs snapshot clone of it),
* ``ours_unpack``     -- the same playbook without ``base`` (each container unpacked from the cached image),
* ``raw_clone``       -- a Python loop: ``lxc-create -t local`` of the base once (the same cached files), then
  ``lxc-copy -s -B overlayfs`` + ``lxc-start`` per container,
* ``raw_unpack``      -- ``lxc-create -t local`` + ``lxc-start`` per container,
* ``community``       -- ``community.general.lxc_container`` with ``template: local`` (``--fstree``/``--metadata``),
* ``community_clone`` -- the same module's clone path (base created stopped, ``clone_name`` +
  ``clone_snapshot`` + ``backing_store: overlayfs``, then ``state: started`` per clone),
* ``ping``            -- Ansible's floor, ``ansible.builtin.ping`` in the same loop of N,
* ``ours_noop``       -- the ours_clone playbook run again over the existing N: it must change nothing.

The no-op and its ping floor are measured in both pipelining modes, Ansible's default (off) and on, each
``--noop-runs`` times (default 5), ping and no-op alternating; the floor of a mode is the median of its
pings, the no-op the median of its runs. The creation methods run with pipelining on
(``benchmarks/ansible.cfg``); their ``ping`` is the floor with pipelining on. Each timed creation starts
once the CPUs were at least 90 % idle for a second (at most 60 s of waiting, untimed): the kernel tears
down the previous method's network namespaces and mounts in the background.

Ratios: ours_unpack / ours_clone >= 5 and, per pipelining mode, ours_noop / ping <= 1.15 (PASS/FAIL); for
information ours_clone / (raw_clone + ping), ours_unpack / (raw_unpack + ping), community / ours_unpack and
community_clone / ours_clone.

Run as root with the project venv::

    /opt/lxcfleet-venv/bin/python benchmarks/fleet.py --n 20 --repeat 1

Exit status: 0 when every requested method of ours, raw and ping ran and was verified (a FAIL ratio is
printed, not an exit status; a community failure is reported as a finding), 1 when one of them failed or
could not be verified, 2 on a usage or pre-flight error. See benchmarks/README.md.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import time

from bench_common import BenchError, emit, log, measure_guarded, ratio, run, tail, take_lock, terminate
from image import ansible_env
from run import bridge_create, bridge_delete, bridge_ports, host_info, judge, list_containers, \
    lxc_state

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PLAYBOOKS = os.path.join(HERE, 'playbooks')
VENV = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
SERVER = os.path.join(REPO, 'tests', 'testbed', 'image_server.py')
MODULE_FILE = os.path.join(REPO, 'plugins', 'modules', 'container.py')

PREFIX = 'lfbf-'
BRIDGE = 'lfbfleet0'
LOCK = '/run/lxcfleet-bench-fleet.lock'
# Containers, the image cache and the run's files live on tmpfs when there is one (see --root).
DEFAULT_ROOT = '/dev/shm/lxcfleet-fleet' if os.path.isdir('/dev/shm') else '/var/lib/lxcfleet-fleet'
SHORT = {'raw_clone': 'rc', 'ours_clone': 'oc', 'raw_unpack': 'ru', 'ours_unpack': 'ou',
         'community': 'cu', 'community_clone': 'cc'}
ALL_METHODS = ('raw_clone', 'ours_clone', 'raw_unpack', 'ours_unpack', 'community', 'community_clone')
CLONES = ('raw_clone', 'ours_clone', 'community_clone')
COMMUNITY = ('community', 'community_clone')
RECAP = re.compile(r'^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)

INOTIFY_PER_CONTAINER = 10
LIMIT_CLONE_SPEEDUP = 5.0
LIMIT_NOOP_VS_PING = 1.15
NOOP_KEYS = ('ping_off', 'ours_noop_off', 'ping_on', 'ours_noop_on')


def loadavg():
    with open('/proc/loadavg', encoding='ascii') as handle:
        return ' '.join(handle.read().split()[:3])


def rootfs_of(path, name):
    """lxc.rootfs.path of a container, from its config file."""
    with open(os.path.join(path, name, 'config'), encoding='utf-8') as handle:
        for line in handle:
            key, sep, value = line.partition('=')
            if sep and key.strip() == 'lxc.rootfs.path':
                return value.strip()
    return None


def lxc_pid(path, name):
    rc, out = run(['lxc-info', '-p', '-H', '-n', name, '-P', path], check=False)
    return int(out.strip()) if rc == 0 and out.strip().isdigit() else None


def destroy_all(path, first=(), only=None):
    """Destroy the containers `first` (the clones), then every other container in `path` (whose name starts
    with `only`, when given): a base with snapshot clones can only go after them."""
    for _round in range(2):
        names = list(first) + [n for n in list_containers(path) if n not in first]
        for name in names:
            if (only is None or name.startswith(only)) and os.path.isdir(os.path.join(path, name)):
                run(['lxc-destroy', '-f', '-n', name, '-P', path], check=False, timeout=120)
    left = [n for n in list_containers(path) if only is None or n.startswith(only)]
    if left:
        raise BenchError('could not destroy %s in %s' % (', '.join(left), path))


def cpu_times():
    """(idle, total) jiffies of all CPUs, from /proc/stat (idle includes iowait)."""
    with open('/proc/stat', encoding='ascii') as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def wait_for_idle_cpu(threshold=0.9, window=1.0, limit=60.0):
    """Wait (untimed) until the CPUs were at least `threshold` idle over one `window`, at most `limit`
    seconds: the previous method's containers are destroyed by then, but the kernel still tears down
    their network namespaces and overlay mounts in the background, and their systemds may still be
    finishing. Returns (seconds waited, idle fraction of the last window)."""
    start = time.monotonic()
    while True:
        idle0, total0 = cpu_times()
        time.sleep(window)
        idle1, total1 = cpu_times()
        idle = (idle1 - idle0) / max(1, total1 - total0)
        waited = time.monotonic() - start
        if idle >= threshold or waited >= limit:
            return waited, idle


class Fleet:
    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.root = args.root
        self.default_path = run(['lxc-config', 'lxc.lxcpath'])[1].strip() or '/var/lib/lxc'
        self.net_conf = os.path.join(self.root, 'net.conf')
        self.state = os.path.join(self.root, 'server.json')
        self.cache = os.path.join(self.root, 'cache')
        self.meta = os.path.join(self.root, 'meta.tar.xz')
        self.env = ansible_env()
        self.image = None
        self.rootfs = None

    # ------------------------------------------------------------------ names and paths

    def names(self, method):
        return ['%s%s-%02d' % (PREFIX, SHORT[method], i) for i in range(self.n)]

    def base_name(self, method):
        return '%s%s-base' % (PREFIX, SHORT[method])

    def path(self, method):
        # community.general.lxc_container binds lxc.Container(name) without config_path, so it only works
        # in LXC's default path (see benchmarks/README.md); everything else has its own path under root.
        if method in COMMUNITY:
            return self.default_path
        return os.path.join(self.root, 'lxc', method)

    # ------------------------------------------------------------------ fixture

    def setup(self):
        """Root folder, bridge, image server, the image cache filled by lxcfleet.lxc.image (untimed)."""
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        with open(self.net_conf, 'w', encoding='ascii') as handle:
            handle.write('lxc.net.0.type = veth\nlxc.net.0.link = %s\nlxc.net.0.flags = up\n' % BRIDGE)
        bridge_create(BRIDGE)
        out = run(['/usr/bin/python3', SERVER, 'build', '--json'], timeout=1800)[1]
        manifest = json.loads(out[out.index('{'):])
        out = run(['/usr/bin/python3', SERVER, 'serve', '--daemon', '--cache', manifest['cache'],
                   '--state', self.state, '--tag', PREFIX.rstrip('-')])[1]
        server = json.loads(out[out.index('{'):])
        debian = manifest['images']['debian']
        self.image = {'dist': 'debian', 'release': debian['release'], 'server': server['https_url'],
                      'ca_path': manifest['ca'], 'keyring': manifest['keyring'], 'cache_dir': self.cache}
        log('fleet: warm-up: lxcfleet.lxc.image fills the cache, one ping run (untimed)')
        self.playbook('fleet_image.yml', {'lfb_image': self.image})
        self.playbook('ping.yml', {'lfb_names': [PREFIX + 'warmup']})
        entry = os.path.join(self.cache, 'download', 'debian', debian['release'], 'amd64', 'default')
        self.rootfs = os.path.join(entry, 'rootfs.tar.xz')
        if not os.path.isfile(self.rootfs):
            raise BenchError('the image task did not fill %s' % self.rootfs)
        # The metadata tarball for lxc-create -t local, from the cached image's own files (the cache keeps
        # meta.tar.xz unpacked), made once like the module makes one from the checked files.
        members = [m for m in ('config', 'templates', 'excludes-user', 'create-message', 'expiry')
                   if os.path.isfile(os.path.join(entry, m))]
        run(['tar', '-cJf', self.meta, '-C', entry] + members)

    def teardown(self):
        if os.path.exists(self.state):
            run(['/usr/bin/python3', SERVER, 'stop', '--state', self.state], check=False)
            os.unlink(self.state)

    def clean_method(self, method):
        path = self.path(method)
        first = self.names(method)
        if method in COMMUNITY:
            destroy_all(path, first + [self.base_name(method)], only='%s%s-' % (PREFIX, SHORT[method]))
        elif os.path.isdir(path):
            destroy_all(path, first)
            shutil.rmtree(path)

    def clean(self):
        """Everything this benchmark makes: its containers (clones first), the bridge, the root folder."""
        self.teardown()
        for method in ALL_METHODS:
            self.clean_method(method)
        lxc_root = os.path.join(self.root, 'lxc')
        for folder in (os.listdir(lxc_root) if os.path.isdir(lxc_root) else []):
            destroy_all(os.path.join(lxc_root, folder))
        bridge_delete(BRIDGE)
        if os.path.isdir(self.root):
            shutil.rmtree(self.root)

    # ------------------------------------------------------------------ runs

    def playbook(self, book, extra, timeout=None, pipelining=None):
        argv = [os.path.join(VENV, 'bin', 'ansible-playbook'), '-i', os.path.join(HERE, 'inventory.ini'),
                os.path.join(PLAYBOOKS, book), '-e', json.dumps(extra)]
        env = self.env
        if pipelining is not None:
            env = dict(env, ANSIBLE_PIPELINING=str(bool(pipelining)))
        start = time.monotonic()
        rc, out = run(argv, check=False, timeout=timeout or 600 + 60 * self.n, env=env, cwd=HERE)
        elapsed = time.monotonic() - start
        if rc != 0:
            raise BenchError('%s: ansible-playbook exit %d\n%s' % (book, rc, tail(out)))
        recap = RECAP.findall(out)
        if len(recap) != 1:
            raise BenchError('%s: no play recap for localhost\n%s' % (book, tail(out)))
        items_changed = sum(1 for line in out.splitlines() if line.startswith('changed: ['))
        return elapsed, int(recap[0][1]), items_changed

    def extra(self, method):
        extra = {'lfb_names': self.names(method), 'lfb_net_conf': self.net_conf, 'lfb_bridge': BRIDGE}
        if method.startswith('ours'):
            extra.update(lfb_lxc_path=self.path(method), lfb_image=self.image)
            if method == 'ours_clone':
                extra['lfb_base'] = {}
        elif method in COMMUNITY:
            extra.update(lfb_template_options='--fstree %s --metadata %s' % (self.rootfs, self.meta),
                         lfb_base_name=self.base_name(method))
        return extra

    def raw(self, method):
        path = self.path(method)
        local = ['-t', 'local', '--', '--fstree', self.rootfs, '--metadata', self.meta]
        start = time.monotonic()
        if method == 'raw_clone':
            base = self.base_name(method)
            run(['lxc-create', '-n', base, '-P', path, '-f', self.net_conf] + local, timeout=600)
        for name in self.names(method):
            if method == 'raw_clone':
                run(['lxc-copy', '-n', base, '-N', name, '-P', path, '-s', '-B', 'overlayfs'])
            else:
                run(['lxc-create', '-n', name, '-P', path, '-f', self.net_conf] + local, timeout=600)
            run(['lxc-start', '-n', name, '-P', path])
        return time.monotonic() - start

    def create(self, method):
        """One timed create+start of N containers by `method`, then verified (untimed)."""
        self.clean_method(method)
        os.makedirs(self.path(method), exist_ok=True)
        ports = bridge_ports(BRIDGE)
        waited, idle = wait_for_idle_cpu()
        entry = {'load': loadavg(), 'idle_wait': waited, 'idle': idle}
        log('fleet:   CPU %.0f%% idle after %.1fs of waiting' % (idle * 100, waited))
        if method.startswith('raw'):
            entry['seconds'] = self.raw(method)
        else:
            book = {'ours_clone': 'fleet_ours.yml', 'ours_unpack': 'fleet_ours.yml',
                    'community': 'fleet_community.yml', 'community_clone': 'fleet_community_clone.yml'}[method]
            entry['seconds'], _changed, items = self.playbook(book, self.extra(method))
            entry['items_changed'] = items
        self.verify(method, ports)
        return entry

    def verify(self, method, ports_before):
        """All N RUNNING, each PID 1 is Debian's systemd, the rootfs is an overlay of a stopped base's
        rootfs (clone methods) or a rootfs of its own (unpack methods), and N more veths on the bridge."""
        path = self.path(method)
        problems = []
        lowers = set()
        for name in self.names(method):
            state = lxc_state(name, path)
            pid = lxc_pid(path, name) if state == 'RUNNING' else None
            if pid is None:
                problems.append('%s is %s' % (name, state))
                continue
            try:
                with open('/proc/%d/comm' % pid, encoding='ascii') as handle:
                    init = handle.read().strip()
            except OSError:
                init = '?'
            if init != 'systemd':
                problems.append('%s runs %s as init, not systemd' % (name, init))
            if not os.path.isfile('/proc/%d/root/etc/debian_version' % pid):
                problems.append('%s has no /etc/debian_version' % name)
            rootfs = rootfs_of(path, name) or ''
            if method in CLONES:
                parts = rootfs.split(':')
                if parts[0] not in ('overlay', 'overlayfs') or len(parts) != 3:
                    problems.append('%s: rootfs %r is not an overlay' % (name, rootfs))
                else:
                    lowers.add(parts[1])
            elif rootfs.startswith(('overlay', 'overlayfs')) or not rootfs.endswith('/%s/rootfs' % name):
                problems.append('%s: rootfs %r is not its own' % (name, rootfs))
        if method in CLONES and len(lowers) == 1:
            lower = lowers.pop()
            base = os.path.basename(os.path.dirname(lower))
            if lxc_state(base, path) != 'STOPPED' or not os.path.isfile(os.path.join(lower, 'etc/debian_version')):
                problems.append('the clones\' lower rootfs %s is not the rootfs of a stopped base container' % lower)
        elif method in CLONES and not problems:
            problems.append('the clones have %d different lower rootfs: %s' % (len(lowers), sorted(lowers)))
        ports = bridge_ports(BRIDGE) - ports_before
        if ports != self.n:
            problems.append('%d new veths on %s for %d containers' % (ports, BRIDGE, self.n))
        if problems:
            raise BenchError('%s not verified: %s' % (method, '; '.join(problems[:8])))

    def settle(self, method):
        """Wait (untimed) until systemd in every container has finished booting, so the no-op run and its
        ping floor are not measured against 20 booting systemds."""
        start = time.monotonic()
        for name in self.names(method):
            run(['lxc-attach', '-n', name, '-P', self.path(method), '--', 'systemctl', 'is-system-running',
                 '--wait'], check=False, timeout=300)
        return time.monotonic() - start

    def ping(self, pipelining=None):
        return self.playbook('ping.yml', {'lfb_names': self.names('ours_clone')}, pipelining=pipelining)[0]

    def noop(self, method):
        """The no-op re-run and its ping floor, in both pipelining modes, alternating."""
        modes = {}
        for mode, pipelining in (('off', False), ('on', True)):
            pings, runs, loads = [], [], []
            for _run in range(self.args.noop_runs):
                pings.append(self.ping(pipelining))
                loads.append(loadavg())
                seconds, changed, items = self.playbook('fleet_ours.yml', self.extra(method), pipelining=pipelining)
                if changed or items:
                    raise BenchError('ours_noop (pipelining %s): the re-run reported changed=%d (%d items): '
                                     'not a no-op' % (mode, changed, items))
                runs.append(seconds)
            modes[mode] = {'ping_runs': pings, 'runs': runs, 'loads': loads,
                           'ping': statistics.median(pings), 'seconds': statistics.median(runs)}
            log('fleet:   no-op, pipelining %s: %s; ping %s' % (
                mode, ' '.join('%.2f' % v for v in runs), ' '.join('%.2f' % v for v in pings)))
        return modes

    def repeat(self, methods):
        """One repeat: every method, each verified and destroyed; ping twice (around ours_noop)."""
        result = {'failed': {}}
        if 'ours_clone' not in methods:
            result['ping_runs'] = [self.ping(), self.ping()]
            result['ping'] = statistics.median(result['ping_runs'])
        for method in methods:
            log('fleet: %s, N=%d (load %s)' % (method, self.n, loadavg()))
            try:
                entry = self.create(method)
                result[method] = entry
                log('fleet:   %.2fs' % entry['seconds'])
                if method == 'ours_clone':
                    entry['settle'] = self.settle(method)
                    ports = bridge_ports(BRIDGE) - self.n
                    modes = self.noop(method)
                    self.verify(method, ports)
                    result['noop_modes'] = modes
                    result['ping_runs'] = modes['on']['ping_runs']
                    result['ping'] = modes['on']['ping']
                    for mode in ('off', 'on'):
                        result['ours_noop_' + mode] = {'seconds': modes[mode]['seconds'],
                                                       'load': modes[mode]['loads'][0]}
                        result['ping_' + mode] = modes[mode]['ping']
            except BenchError as exc:
                if method not in COMMUNITY:
                    raise
                result['failed'][method] = str(exc)
                log('fleet:   %s FAILED: %s' % (method, str(exc).splitlines()[0][:300]))
            finally:
                if not self.args.keep:
                    self.clean_method(method)
        return result


# ---------------------------------------------------------------------------------- reporting

def summarize(repeats):
    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def at(rep, key):
        if key.startswith('ping'):
            return rep.get(key)
        return rep[key]['seconds'] if key in rep else None

    def plus(a, b):
        return None if a is None or b is None else a + b

    keys = ('ping',) + ALL_METHODS + NOOP_KEYS
    figures = {k: median(at(r, k) for r in repeats) for k in keys}
    specs = [
        ('ours_unpack / ours_clone', lambda r: ratio(at(r, 'ours_unpack'), at(r, 'ours_clone')),
         '>=', LIMIT_CLONE_SPEEDUP),
        ('ours_noop / ping, pipelining off', lambda r: ratio(at(r, 'ours_noop_off'), at(r, 'ping_off')), '<=',
         LIMIT_NOOP_VS_PING),
        ('ours_noop / ping, pipelining on', lambda r: ratio(at(r, 'ours_noop_on'), at(r, 'ping_on')), '<=',
         LIMIT_NOOP_VS_PING),
        ('ours_clone / (raw_clone + ping) (info)',
         lambda r: ratio(at(r, 'ours_clone'), plus(at(r, 'raw_clone'), at(r, 'ping'))), None, None),
        ('ours_unpack / (raw_unpack + ping) (info)',
         lambda r: ratio(at(r, 'ours_unpack'), plus(at(r, 'raw_unpack'), at(r, 'ping'))), None, None),
        ('raw_unpack / raw_clone (info)', lambda r: ratio(at(r, 'raw_unpack'), at(r, 'raw_clone')), None, None),
        ('community / ours_unpack (info)', lambda r: ratio(at(r, 'community'), at(r, 'ours_unpack')), None, None),
        ('community / ours_clone (info)', lambda r: ratio(at(r, 'community'), at(r, 'ours_clone')), None, None),
        ('community_clone / ours_clone (info)',
         lambda r: ratio(at(r, 'community_clone'), at(r, 'ours_clone')), None, None),
    ]
    ratios = []
    for name, fn, op, limit in specs:
        value = median(fn(r) for r in repeats)
        ratios.append({'name': name, 'value': value, 'op': op, 'limit': limit,
                       'result': judge(value, limit, op) if op else 'info'})
    return {'figures': figures, 'ratios': ratios}


def print_text(report):
    n = report['n']
    print('fleet benchmark: N=%d Debian containers from one cached image, repeat=%d, %s'
          % (n, report['repeat'], report['host']['summary']))
    print('lxc paths: %s (community: %s); bridge %s' % (report['root'] + '/lxc/<method>',
                                                        report['default_lxc_path'], BRIDGE))
    print()
    print('%-16s %10s %11s  %-22s %s' % ('method', 'seconds', 'per cont.', 'load at start', 'runs'))
    figures = report['summary']['figures']
    for key in ('ping',) + ALL_METHODS + NOOP_KEYS:
        runs = [r[key]['seconds'] if not key.startswith('ping') else r[key] for r in report['repeats'] if key in r]
        if figures.get(key) is None:
            failed = [r['failed'][key] for r in report['repeats'] if key in r.get('failed', {})]
            if failed:
                print('%-16s FAILED: %s' % (key, ' '.join(failed[0].split())[:400]))
            continue
        loads = [r[key]['load'] for r in report['repeats'] if key in r and not key.startswith('ping')]
        print('%-16s %9.2fs %10.3fs  %-22s %s' % (key, figures[key], figures[key] / n, loads[0] if loads else '',
                                                  ' '.join('%.2f' % v for v in runs)))
    for mode in ('off', 'on'):
        for r in report['repeats']:
            m = r.get('noop_modes', {}).get(mode)
            if m:
                print('pipelining %-3s: ping runs %s, no-op runs %s (medians %.2f / %.2f)' % (
                    mode, ' '.join('%.2f' % p for p in m['ping_runs']), ' '.join('%.2f' % p for p in m['runs']),
                    m['ping'], m['seconds']))
    print()
    print('ratios (each taken within one repeat, median over the repeats):')
    for r in report['summary']['ratios']:
        value = 'n/a' if r['value'] is None else '%.2f' % r['value']
        limit = '(%s %.2f)' % (r['op'], r['limit']) if r['op'] else ''
        print('  %-42s %7s %-10s %s' % (r['name'], value, limit, r['result']))
    print('load average (1, 5, 15 min): %s at start, %s at the end; skipped: %s' % (
        ' '.join(report['host']['loadavg_before']), report.get('load_after', '?'),
        '; '.join('%s (%s)' % kv for kv in report['skipped'].items()) or 'none'))


# ---------------------------------------------------------------------------------- main

def preflight(methods, n):
    tools = ('lxc-create', 'lxc-copy', 'lxc-start', 'lxc-info', 'lxc-ls', 'lxc-destroy', 'lxc-attach', 'lxc-config',
             'ip', 'tar', os.path.join(VENV, 'bin', 'ansible-playbook'))
    problems = ['%s not found (run with the project venv\'s python as root)' % t for t in tools if not shutil.which(t)]
    if os.geteuid() != 0:
        problems.insert(0, 'needs root: privileged containers and the bridge %s' % BRIDGE)
    # Privileged containers share root's inotify instances with the host; a booted Debian takes about 8
    # (systemd, journald, logind, dbus, getty). At Debian's default of 128 the 16th or so fails to boot.
    with open('/proc/sys/fs/inotify/max_user_instances', encoding='ascii') as handle:
        instances = int(handle.read())
    needed = INOTIFY_PER_CONTAINER * (n + 4)
    if instances < needed:
        problems.append('fs.inotify.max_user_instances is %d: too few for %d systemd containers (root shares them); '
                        'raise it, e.g. sysctl -w fs.inotify.max_user_instances=%d'
                        % (instances, n, max(1024, 2 * needed)))
    if set(methods) & set(COMMUNITY) and run(['/usr/bin/python3', '-c', 'import lxc'], check=False)[0]:
        problems.append('community.general.lxc_container needs python3-lxc for /usr/bin/python3')
    return problems


def has_base_option():
    """Whether lxcfleet.lxc.container documents the `base` option (the clone path of ours_clone)."""
    try:
        with open(MODULE_FILE, encoding='utf-8') as handle:
            return re.search(r'^  base:$', handle.read(), re.M) is not None
    except OSError:
        return False


def method_list(text):
    """--methods: a comma-separated subset of ALL_METHODS, returned in the order of ALL_METHODS."""
    wanted = {m.strip() for m in text.split(',')} - {''}
    if not wanted or wanted - set(ALL_METHODS):
        raise argparse.ArgumentTypeError('%s: choose from %s' % (text, ','.join(ALL_METHODS)))
    return [m for m in ALL_METHODS if m in wanted]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=20, help='containers per method (default 20)')
    p.add_argument('--repeat', type=int, default=1, help='measure everything this many times, report medians')
    p.add_argument('--methods', type=method_list, default=list(ALL_METHODS),
                   help='comma-separated subset of %s (default: all; ping always runs)' % ','.join(ALL_METHODS))
    p.add_argument('--root', default=DEFAULT_ROOT,
                   help='folder for the lxc paths, the image cache and the run\'s files (default %s: tmpfs)'
                   % DEFAULT_ROOT)
    p.add_argument('--noop-runs', type=int, default=5,
                   help='no-op runs (and ping runs) per pipelining mode, alternating (default 5)')
    p.add_argument('--keep', action='store_true',
                   help='leave the containers and bridge %s in place (remove them with --clean)' % BRIDGE)
    p.add_argument('--clean', action='store_true', help='only remove what a run (or a --keep run) left, then exit')
    p.add_argument('--json', action='store_true', help='print the report as JSON on stdout')
    args = p.parse_args(argv)
    args.methods_given = args.methods != list(ALL_METHODS)
    if args.n < 1 or args.n > 99 or args.repeat < 1 or args.noop_runs < 1:
        p.error('--n must be 1 to 99, --repeat and --noop-runs at least 1')
    args.root = os.path.abspath(args.root)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problems = preflight(args.methods, args.n)
    skipped = {}
    if 'ours_clone' in args.methods and not has_base_option():
        why = 'lxcfleet.lxc.container has no `base` option yet (%s); ours_noop skipped with it' % MODULE_FILE
        if args.methods_given:
            problems.append(why)
        else:
            skipped['ours_clone'] = why
            args.methods.remove('ours_clone')
    if problems:
        for problem in problems:
            log('fleet: %s' % problem)
        return 2
    lock = take_lock(LOCK, 'fleet')
    if lock is None:
        return 2
    signal.signal(signal.SIGTERM, terminate)
    fleet = Fleet(args)
    if args.clean:
        fleet.clean()
        log('fleet: cleaned %s, bridge %s, %s* in %s' % (args.root, BRIDGE, PREFIX, fleet.default_path))
        return 0
    report = {'n': args.n, 'repeat': args.repeat, 'methods': args.methods, 'root': args.root,
              'default_lxc_path': fleet.default_path, 'host': host_info(fleet.env), 'repeats': [],
              'skipped': skipped}

    def body():
        fleet.clean()
        fleet.setup()
        for i in range(args.repeat):
            log('fleet: repeat %d of %d' % (i + 1, args.repeat))
            report['repeats'].append(fleet.repeat(args.methods))

    def cleanup():
        report['load_after'] = loadavg()
        if args.keep:
            fleet.teardown()
            log('fleet: --keep: containers, %s and %s left in place; remove with --clean' % (BRIDGE, args.root))
        else:
            fleet.clean()

    status = measure_guarded(body, cleanup, report, 'fleet')
    report['summary'] = summarize(report['repeats'])
    return emit(report, status, args.json, print_text)


if __name__ == '__main__':
    sys.exit(main())
