"""Benchmark: create+start of N busybox containers, and a no-op re-run, by

* ``raw``       -- a loop of ``lxc-create`` / ``lxc-start`` (no-op: ``lxc-info -s`` per name),
* ``ping``      -- Ansible's own per-task floor: ``ansible.builtin.ping`` in a loop of N,
* ``ours``      -- ``lxcfleet.lxc.container`` in a loop of N,
* ``community`` -- ``community.general.lxc_container`` in a loop of N,
* ``community_cc`` -- optional, not in the default set: the same module with the network set
  through ``container_config`` only (it restarts every new container once),

all in one run, then the acceptance ratios:

* ours create+start / (raw create+start + ping floor)  <= 1.15
* community create+start / ours create+start           >= 3
* ours no-op / ping floor                              <= 1.15

Run as root with the project venv::

    /opt/lxcfleet-venv/bin/python benchmarks/run.py --n 10

Exit status: 0 when every requested method ran and was verified (a FAIL ratio is printed, not
an exit status), 1 when a method failed or its result could not be verified, 2 on a usage or
pre-flight error. See benchmarks/README.md.
"""

import argparse
import fcntl
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

from bench_common import BenchError, caller_env, emit, log, ratio, run, tail, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PLAYBOOKS = os.path.join(HERE, 'playbooks')

BASE = '/var/lib/lxcfleet-bench'
BRIDGE = 'lfbench0'
ALT_BRIDGE = 'lfbench1'  # only for community_cc: where its containers start before the rewrite
NET_CONF = os.path.join(BASE, 'net.conf')
ALT_NET_CONF = os.path.join(BASE, 'net-alt.conf')
LOCK = '/run/lxcfleet-bench.lock'
PREFIX = 'lfb-'
SHORT = {'raw': 'raw', 'ping': 'ping', 'ours': 'ours', 'community': 'comm',
         'community_cc': 'cc'}
ALL_METHODS = ('raw', 'ping', 'ours', 'community', 'community_cc')
DEFAULT_METHODS = ('raw', 'ping', 'ours', 'community')
CONTAINER_METHODS = ('raw', 'ours', 'community', 'community_cc')
MODULE_FILE = os.path.join(REPO, 'plugins', 'modules', 'container.py')
VENV = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))

LIMIT_OURS_VS_RAW = 1.15
LIMIT_COMMUNITY_VS_OURS = 3.0
LIMIT_NOOP_VS_PING = 1.15


# --------------------------------------------------------------------------------- LXC helpers

def default_lxc_path():
    out = run(['lxc-config', 'lxc.lxcpath'])[1]
    return out.strip() or '/var/lib/lxc'


def lxc_state(name, path):
    rc, out = run(['lxc-info', '-s', '-n', name, '-P', path], check=False)
    if rc != 0:
        return 'ABSENT'
    # "State:          RUNNING"
    return out.split(':', 1)[1].strip() if ':' in out else 'UNKNOWN'


def list_containers(path):
    if not os.path.isdir(path):
        return []
    out = run(['lxc-ls', '-1', '-P', path])[1]
    return out.split()


def destroy_prefixed(path, prefix):
    """Destroy every container in path whose name starts with prefix (and only those)."""
    for name in list_containers(path):
        if name.startswith(prefix):
            run(['lxc-destroy', '-f', '-n', name, '-P', path], check=False, timeout=60)
    left = [n for n in list_containers(path) if n.startswith(prefix)]
    if left:
        raise BenchError('could not destroy %s in %s' % (', '.join(left), path))


def bridge_ports(bridge=BRIDGE):
    brif = '/sys/class/net/%s/brif' % bridge
    return len(os.listdir(brif)) if os.path.isdir(brif) else 0


def bridge_exists(bridge):
    return os.path.isdir('/sys/class/net/%s' % bridge)


def bridge_create(bridge):
    if bridge_exists(bridge):
        run(['ip', 'link', 'delete', bridge])
    run(['ip', 'link', 'add', bridge, 'type', 'bridge'])
    run(['ip', 'link', 'set', bridge, 'up'])


def bridge_delete(bridge):
    if bridge_exists(bridge):
        run(['ip', 'link', 'delete', bridge], check=False)


# ------------------------------------------------------------------------------------ methods

class Bench(object):
    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.default_path = default_lxc_path()
        self.paths = {
            'raw': os.path.join(BASE, 'raw'),
            'ours': os.path.join(BASE, 'ours'),
            # community.general.lxc_container ignores lxc_path after lxc-create; see
            # playbooks/community.yml. Its containers go to the default lxc path.
            'community': self.default_path,
            'community_cc': self.default_path,
        }
        self.env = self.ansible_env()

    def names(self, method):
        return ['%s%s-%02d' % (PREFIX, SHORT[method], i) for i in range(self.n)]

    def prefix(self, method):
        return '%s%s-' % (PREFIX, SHORT[method])

    # ------------------------------------------------------------------ environment

    def ansible_env(self):
        env = caller_env()
        env.update({
            'ANSIBLE_CONFIG': os.path.join(HERE, 'ansible.cfg'),
            'ANSIBLE_COLLECTIONS_PATH': os.path.join(REPO, '.build', 'collections'),
            'ANSIBLE_PIPELINING': 'True',
            'ANSIBLE_FORCE_COLOR': 'False',
            'ANSIBLE_NOCOLOR': 'True',
            'PYTHONDONTWRITEBYTECODE': '1',
        })
        env['PATH'] = os.path.join(VENV, 'bin') + os.pathsep + env.get('PATH', '')
        return env

    def ensure_collection_link(self):
        """.build/collections/ansible_collections/lxcfleet/lxc -> the repository."""
        parent = os.path.join(REPO, '.build', 'collections', 'ansible_collections', 'lxcfleet')
        link = os.path.join(parent, 'lxc')
        if os.path.islink(link) or os.path.exists(link):
            return
        os.makedirs(parent, exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass  # created by someone else meanwhile

    # ------------------------------------------------------------------ cleanup

    def clean(self):
        for method in CONTAINER_METHODS:
            destroy_prefixed(self.paths[method], self.prefix(method))
        # stray lfb- containers of earlier runs in the benchmark paths
        for path in (self.paths['raw'], self.paths['ours']):
            destroy_prefixed(path, PREFIX)
        bridge_delete(BRIDGE)
        bridge_delete(ALT_BRIDGE)
        if os.path.isdir(BASE):
            shutil.rmtree(BASE)

    def clean_method(self, method):
        if method in self.paths:
            destroy_prefixed(self.paths[method], self.prefix(method))

    # ------------------------------------------------------------------ verification

    def verify(self, method, ports_before):
        names = self.names(method)
        path = self.paths[method]
        states = {name: lxc_state(name, path) for name in names}
        running = sum(1 for s in states.values() if s == 'RUNNING')
        if running != self.n:
            bad = ', '.join('%s=%s' % kv for kv in sorted(states.items()) if kv[1] != 'RUNNING')
            raise BenchError('%s: %d of %d containers RUNNING in %s (%s)'
                             % (method, running, self.n, path, bad))
        ports = bridge_ports() - ports_before
        if ports != self.n:
            raise BenchError('%s: %d veths on %s for %d containers'
                             % (method, ports, BRIDGE, self.n))
        return running

    # ------------------------------------------------------------------ the runs

    def playbook(self, method, extra):
        book = os.path.join(PLAYBOOKS, '%s.yml' % method)
        argv = [os.path.join(VENV, 'bin', 'ansible-playbook'), '-i',
                os.path.join(HERE, 'inventory.ini'), book, '-e', json.dumps(extra)]
        timeout = 60 + 30 * self.n
        start = time.monotonic()
        rc, out = run(argv, check=False, timeout=timeout, env=self.env, cwd=HERE)
        elapsed = time.monotonic() - start
        if rc != 0:
            raise BenchError('%s: ansible-playbook exit %d\n%s' % (method, rc, tail(out)))
        changed = sum(1 for line in out.splitlines() if line.startswith('changed: ['))
        ok = sum(1 for line in out.splitlines() if line.startswith('ok: ['))
        return elapsed, changed, ok

    def extra_vars(self, method):
        extra = {'lfb_names': self.names(method), 'lfb_bridge': BRIDGE,
                 'lfb_net_conf': NET_CONF, 'lfb_alt_net_conf': ALT_NET_CONF}
        if method == 'ours':
            extra['lfb_lxc_path'] = self.paths['ours']
        return extra

    def raw_create_start(self):
        path = self.paths['raw']
        start = time.monotonic()
        for name in self.names('raw'):
            run(['lxc-create', '-t', 'busybox', '-n', name, '-P', path, '-f', NET_CONF])
            run(['lxc-start', '-n', name, '-P', path])
        return time.monotonic() - start, self.n, 0

    def raw_noop(self):
        path = self.paths['raw']
        changed = 0
        start = time.monotonic()
        for name in self.names('raw'):
            state = lxc_state(name, path)
            if state == 'RUNNING':
                continue
            changed += 1
            if state == 'ABSENT':
                run(['lxc-create', '-t', 'busybox', '-n', name, '-P', path, '-f', NET_CONF])
            run(['lxc-start', '-n', name, '-P', path])
        return time.monotonic() - start, changed, self.n - changed

    def measure(self, method):
        """One create+start run and one no-op re-run of method, verified, then destroyed."""
        result = {}
        if method == 'ping':
            for phase in ('create_start', 'noop'):
                t, changed, ok = self.playbook('ping', self.extra_vars('ping'))
                result[phase] = t
                if ok != self.n:
                    raise BenchError('ping: %d of %d items ok' % (ok, self.n))
            return result
        self.clean_method(method)
        os.makedirs(self.paths[method], exist_ok=True)
        ports_before = bridge_ports()
        try:
            if method == 'raw':
                t, changed = self.raw_create_start()[:2]
            else:
                t, changed = self.playbook(method, self.extra_vars(method))[:2]
            result['create_start'] = t
            result['running_after_create'] = self.verify(method, ports_before)
            result['changed_create'] = changed
            if changed != self.n:
                raise BenchError('%s: create run reported %d of %d items changed'
                                 % (method, changed, self.n))
            if method == 'raw':
                t, changed = self.raw_noop()[:2]
            else:
                t, changed = self.playbook(method, self.extra_vars(method))[:2]
            result['noop'] = t
            result['running_after_noop'] = self.verify(method, ports_before)
            result['changed_noop'] = changed
        finally:
            if not self.args.keep:
                self.clean_method(method)
        return result

    def warm_up(self):
        """One untimed ping run, so no method pays for a cold page cache / bytecode."""
        self.playbook('ping', {'lfb_names': ['%swarmup' % PREFIX]})


# ---------------------------------------------------------------------------------- reporting

def judge(value, limit, op):
    if value is None:
        return 'n/a'
    return 'PASS' if (value <= limit if op == '<=' else value >= limit) else 'FAIL'


def summarize(results, n):
    def med(method, phase):
        runs = results.get(method)
        if not runs:
            return None
        return statistics.median(r[phase] for r in runs)

    raw = med('raw', 'create_start')
    ping_runs = [r[p] for r in results.get('ping', []) for p in ('create_start', 'noop')]
    ping = statistics.median(ping_runs) if ping_runs else None
    ours = med('ours', 'create_start')
    ours_noop = med('ours', 'noop')
    comm = med('community', 'create_start')
    base = (raw + ping) if raw is not None and ping is not None else None
    # Ratios are computed per repeat (the methods of one repeat ran close together in time, so
    # a load change on the machine hits both sides) and the median over the repeats is shown.
    repeats = min((len(v) for v in results.values()), default=0)

    def per_repeat(fn):
        values = []
        for i in range(repeats):
            def at(method, phase, _i=i):
                runs = results.get(method)
                return runs[_i][phase] if runs else None
            v = fn(at)
            if v is not None:
                values.append(v)
        return statistics.median(values) if values else None

    def ping_at(at):
        c, o = at('ping', 'create_start'), at('ping', 'noop')
        return None if c is None else (c + o) / 2

    def base_at(at):
        raw_i, ping_i = at('raw', 'create_start'), ping_at(at)
        return None if raw_i is None or ping_i is None else raw_i + ping_i

    ratios = [
        {'name': 'ours_create_start / (raw_create_start + ping_floor)',
         'value': per_repeat(lambda at: ratio(at('ours', 'create_start'), base_at(at))),
         'op': '<=', 'limit': LIMIT_OURS_VS_RAW},
        {'name': 'community_create_start / ours_create_start',
         'value': per_repeat(lambda at: ratio(at('community', 'create_start'),
                                              at('ours', 'create_start'))),
         'op': '>=', 'limit': LIMIT_COMMUNITY_VS_OURS},
        {'name': 'ours_noop / ping_floor',
         'value': per_repeat(lambda at: ratio(at('ours', 'noop'), ping_at(at))),
         'op': '<=', 'limit': LIMIT_NOOP_VS_PING},
    ]
    if results.get('community_cc'):
        ratios.append({'name': 'community_cc_create_start / ours_create_start (info)',
                       'value': per_repeat(lambda at: ratio(at('community_cc', 'create_start'),
                                                            at('ours', 'create_start'))),
                       'op': '>=', 'limit': LIMIT_COMMUNITY_VS_OURS})

    # The same comparison on the work above Ansible's own per-item floor, which both modules pay.
    def above_floor(at, method):
        t, floor = at(method, 'create_start'), ping_at(at)
        return None if t is None or floor is None else t - floor

    if results.get('community'):
        ratios.append({'name': '(community - ping_floor) / (ours - ping_floor) (info)',
                       'value': per_repeat(lambda at: ratio(above_floor(at, 'community'),
                                                            above_floor(at, 'ours'))),
                       'op': '>=', 'limit': LIMIT_COMMUNITY_VS_OURS})
    for r in ratios:
        r['result'] = judge(r['value'], r['limit'], r['op'])
    budget = {}
    if base is not None:
        budget['ours_create_start_max_s'] = LIMIT_OURS_VS_RAW * base
        budget['ours_create_start_max_per_container_s'] = LIMIT_OURS_VS_RAW * base / n
        # what one container may cost above Ansible's own per-item floor
        budget['ours_above_ping_max_per_container_s'] = (LIMIT_OURS_VS_RAW * base - ping) / n
        budget['raw_per_container_s'] = raw / n
    if ours is not None and ping is not None:
        budget['ours_above_ping_per_container_s'] = (ours - ping) / n
    if ping is not None:
        budget['ours_noop_max_s'] = LIMIT_NOOP_VS_PING * ping
        budget['ours_noop_max_per_container_s'] = LIMIT_NOOP_VS_PING * ping / n
    if comm is not None:
        budget['ours_create_start_max_for_community_ratio_s'] = comm / LIMIT_COMMUNITY_VS_OURS
    return {'ping_floor': ping, 'ratios': ratios, 'budget': budget}


def fmt(v, width=8):
    return ('%*.2f' % (width, v)) if isinstance(v, (int, float)) else ('%*s' % (width, v or '-'))


def print_text(report):
    n = report['n']
    print('lxcfleet benchmark: N=%d busybox containers, repeat=%d, %s'
          % (n, report['repeat'], report['host']['summary']))
    print('lxc paths: %s' % ', '.join('%s=%s' % kv for kv in report['lxc_paths'].items()))
    print()
    header = ('method', 'create+start', 'per cont.', 'no-op', 'per cont.', 'changed (create/no-op)')
    print('%-12s %12s %10s %9s %10s  %s' % header)
    for method in report['methods']:
        m = report['results'].get(method)
        if m is None:
            print('%-12s %s' % (method, report['skipped'].get(method, 'not run')))
            continue
        print('%-12s %11.2fs %9.3fs %8.2fs %9.3fs  %s' % (
            method, m['create_start'], m['create_start'] / n, m['noop'], m['noop'] / n,
            '%s/%s' % (m.get('changed_create', '-'), m.get('changed_noop', '-'))))
        if len(m.get('runs', [])) > 1:
            print('%-12s runs: create+start %s; no-op %s' % (
                '', ' '.join('%.2f' % r['create_start'] for r in m['runs']),
                ' '.join('%.2f' % r['noop'] for r in m['runs'])))
    s = report['summary']
    if s['ping_floor'] is not None:
        print('ping floor (median of every ping run): %.2fs (%.3fs per item)'
              % (s['ping_floor'], s['ping_floor'] / n))
    for method in ('ours', 'community', 'community_cc'):
        m = report['results'].get(method)
        if m and m.get('changed_noop'):
            print('WARNING: %s no-op re-run reported %d of %d items changed (not idempotent)'
                  % (method, m['changed_noop'], n))
    print()
    print('ratios:')
    for r in s['ratios']:
        val = 'n/a' if r['value'] is None else '%.2f' % r['value']
        print('  %-52s %6s  (%s %.2f)  %s' % (r['name'], val, r['op'], r['limit'], r['result']))
    b = s['budget']
    if b:
        print()
        print('budget for lxcfleet.lxc.container at this N on this machine:')
        if 'ours_create_start_max_s' in b:
            print('  create+start <= %.2fs (%.3fs per container, playbook start-up included)'
                  % (b['ours_create_start_max_s'], b['ours_create_start_max_per_container_s']))
            print('  above the ping floor: <= %.3fs per container (raw lxc-create+lxc-start: '
                  '%.3fs)%s' % (b['ours_above_ping_max_per_container_s'],
                                b['raw_per_container_s'],
                                '; measured %.3fs' % b['ours_above_ping_per_container_s']
                                if 'ours_above_ping_per_container_s' in b else ''))
        if 'ours_noop_max_s' in b:
            print('  no-op        <= %.2fs (%.3fs per container)'
                  % (b['ours_noop_max_s'], b['ours_noop_max_per_container_s']))
        if 'ours_create_start_max_for_community_ratio_s' in b:
            print('  create+start <= %.2fs for community / ours >= %.0f'
                  % (b['ours_create_start_max_for_community_ratio_s'],
                     LIMIT_COMMUNITY_VS_OURS))
    for method, why in report['skipped'].items():
        print('SKIPPED %s: %s' % (method, why))


# ---------------------------------------------------------------------------------- main

def preflight(methods):
    problems = []
    if os.geteuid() != 0:
        problems.append('run as root (privileged containers, bridge %s)' % BRIDGE)
    for tool in ('lxc-create', 'lxc-start', 'lxc-info', 'lxc-ls', 'lxc-destroy', 'lxc-config',
                 'ip'):
        if not shutil.which(tool):
            problems.append('%s not found' % tool)
    if not os.path.exists('/usr/share/lxc/templates/lxc-busybox'):
        problems.append('LXC busybox template missing (/usr/share/lxc/templates/lxc-busybox)')
    if not (shutil.which('busybox') or os.path.exists('/bin/busybox')):
        problems.append('busybox missing (apt-get install busybox-static)')
    if set(methods) - {'raw'}:
        if not os.path.exists(os.path.join(VENV, 'bin', 'ansible-playbook')):
            problems.append('ansible-playbook not in %s/bin; run with the venv python' % VENV)
        if not os.path.exists('/usr/bin/python3'):
            problems.append('/usr/bin/python3 missing')
    if {'community', 'community_cc'} & set(methods):
        rc = subprocess.call(['/usr/bin/python3', '-c', 'import lxc'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rc != 0:
            problems.append('community needs python3-lxc for /usr/bin/python3 '
                            '(apt-get install python3-lxc)')
    return problems


def host_info(env):
    info = {'cpus': os.cpu_count(), 'kernel': platform.release(),
            'loadavg_before': open('/proc/loadavg').read().split()[:3]}
    try:
        info['lxc'] = subprocess.run(['lxc-create', '--version'], capture_output=True,
                                     text=True, check=False).stdout.strip()
        out = subprocess.run([os.path.join(VENV, 'bin', 'ansible'), '--version'],
                             capture_output=True, text=True, env=env, check=False).stdout
        info['ansible_core'] = out.splitlines()[0].split('core ')[-1].rstrip(']') if out else ''
        manifest = os.path.join(VENV, 'lib', 'python%d.%d' % sys.version_info[:2],
                                'site-packages', 'ansible_collections', 'community', 'general',
                                'MANIFEST.json')
        with open(manifest) as f:
            info['community_general'] = json.load(f)['collection_info']['version']
    except (OSError, ValueError, KeyError, IndexError):
        pass
    info['summary'] = '%s CPUs, LXC %s, ansible-core %s, community.general %s, load %s' % (
        info['cpus'], info.get('lxc', '?'), info.get('ansible_core', '?'),
        info.get('community_general', '?'), ' '.join(info['loadavg_before']))
    return info


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=10, help='containers per method (default 10)')
    p.add_argument('--methods', default=','.join(DEFAULT_METHODS),
                   help='comma-separated subset of %s (default: %s)'
                   % (','.join(ALL_METHODS), ','.join(DEFAULT_METHODS)))
    p.add_argument('--repeat', type=int, default=1,
                   help='measure every method this many times, report the median (default 1)')
    p.add_argument('--keep', action='store_true',
                   help='leave containers and bridge %s in place (remove them with --clean)'
                   % BRIDGE)
    p.add_argument('--clean', action='store_true',
                   help='only remove what a run (or a --keep run) left behind, then exit')
    p.add_argument('--json', action='store_true', help='print the report as JSON on stdout')
    args = p.parse_args(argv)
    args.methods_given = any(a == '--methods' or a.startswith('--methods=') for a in argv)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown or not methods:
        p.error('unknown method(s) %s; choose from %s' % (unknown, ','.join(ALL_METHODS)))
    args.methods = [m for m in ALL_METHODS if m in methods]
    if args.n < 1 or args.repeat < 1:
        p.error('--n and --repeat must be at least 1')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problems = preflight(args.methods)
    skipped = {}
    if 'ours' in args.methods and not os.path.exists(MODULE_FILE):
        why = 'lxcfleet.lxc.container not available yet (%s missing)' % MODULE_FILE
        if args.methods_given:
            problems.append(why)
        else:
            skipped['ours'] = why
    if problems:
        for p in problems:
            log('benchmark: %s' % p)
        return 2

    lock = open(LOCK, 'w')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log('benchmark: another benchmark run holds %s' % LOCK)
        return 2
    signal.signal(signal.SIGTERM, terminate)

    bench = Bench(args)
    if args.clean:
        bench.clean()
        log('benchmark: cleaned %s, bridge %s, %s in %s'
            % (BASE, ' and '.join((BRIDGE, ALT_BRIDGE)),
               ', '.join(bench.prefix(m) + '*' for m in ('community', 'community_cc')),
               bench.default_path))
        return 0

    methods = [m for m in args.methods if m not in skipped]
    bench.ensure_collection_link()
    report = {'n': args.n, 'repeat': args.repeat, 'methods': args.methods,
              'host': host_info(bench.env), 'lxc_paths': {
                  m: bench.paths[m] for m in CONTAINER_METHODS if m in methods},
              'results': {}, 'skipped': skipped}
    runs = {m: [] for m in methods}
    status = 0
    try:
        bench.clean()
        os.makedirs(BASE)
        with open(NET_CONF, 'w') as f:
            f.write('lxc.net.0.type = veth\nlxc.net.0.link = %s\nlxc.net.0.flags = up\n'
                    % BRIDGE)
        with open(ALT_NET_CONF, 'w') as f:
            f.write('lxc.net.0.type = veth\nlxc.net.0.link = %s\nlxc.net.0.flags = up\n'
                    % ALT_BRIDGE)
        bridge_create(BRIDGE)
        if 'community_cc' in methods:
            bridge_create(ALT_BRIDGE)
        if set(methods) - {'raw'}:
            log('benchmark: warm-up (untimed ping run)')
            bench.warm_up()
        for i in range(args.repeat):
            for method in methods:
                log('benchmark: %s, run %d of %d, N=%d' % (method, i + 1, args.repeat, args.n))
                r = bench.measure(method)
                runs[method].append(r)
                log('benchmark:   create+start %.2fs, no-op %.2fs'
                    % (r['create_start'], r['noop']))
    except BenchError as e:
        log('benchmark: ERROR: %s' % e)
        report['error'] = str(e)
        status = 1
    except KeyboardInterrupt as e:
        log('benchmark: interrupted (%s)' % (e or 'SIGINT'))
        report['error'] = 'interrupted'
        status = 1
    finally:
        if args.keep:
            log('benchmark: --keep: containers and %s left in place; remove with --clean'
                % BRIDGE)
        else:
            try:
                bench.clean()
            except BenchError as e:
                log('benchmark: ERROR during cleanup: %s' % e)
                status = 1

    for method, rs in runs.items():
        if not rs or (status and len(rs) < args.repeat):
            continue
        res = {'create_start': statistics.median(r['create_start'] for r in rs),
               'noop': statistics.median(r['noop'] for r in rs),
               'runs': rs}
        for key in ('changed_create', 'changed_noop'):
            if key in rs[-1]:
                res[key] = max(r[key] for r in rs)
        report['results'][method] = res
    report['summary'] = summarize({m: rs for m, rs in runs.items() if m in report['results']},
                                  args.n)
    return emit(report, status, args.json, print_text)


if __name__ == '__main__':
    sys.exit(main())
