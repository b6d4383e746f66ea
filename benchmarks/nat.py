"""Benchmark: apply a set of N port forwards (default 100) with lxcfleet.lxc.nat, and a no-op
re-run, against

* ``raw``       -- ``ip netns exec NS nft -f FILE`` of the exact transaction the module writes
  (``table inet T {}``, ``delete table inet T``, the table), rendered by the module's own code,
* ``ping``      -- Ansible's floor: one ``ansible.builtin.ping`` task, a playbook of the same
  shape as the module's (one task, no loop); run twice per repeat, the floor is their mean,
* ``ping_loop`` -- informational: the same ping as a loop of one item,
* ``ours``      -- one ``lxcfleet.lxc.nat`` task with all N forwards, then the same task again
  (the no-op run, which must report changed=false),

all inside a network namespace the benchmark creates (``lfbnat-<pid>``), in table ``lfbnat``.
Forwards: tcp ports 20000.. to 10.254.200.1.. port 80, masquerade source 10.254.200.0/24. These
addresses exist only in that namespace; no packet is sent.

Ratios: ours_noop / ping_floor <= 1.2 (PASS/FAIL); ours_apply / raw_apply (info).

Run as root with the project venv::

    /opt/lxcfleet-venv/bin/python benchmarks/nat.py --n 100 --repeat 3

Exit status: 0 when every run was done and verified (a FAIL ratio is printed, not an exit
status), 1 when a run failed or its result could not be verified, 2 on a usage or pre-flight
error. See benchmarks/README.md.
"""

import argparse
import fcntl
import importlib
import ipaddress
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import BenchError, caller_env, emit, log, ratio, run, tail, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PLAYBOOKS = os.path.join(HERE, 'playbooks')
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
VENV = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
MODULE_FILE = os.path.join(REPO, 'plugins', 'modules', 'nat.py')

LOCK = '/run/lxcfleet-bench-nat.lock'
NETNS_PREFIX = 'lfbnat'
TABLE = 'lfbnat'
SOURCE = ipaddress.IPv4Network('10.254.200.0/24')
FIRST_PORT = 20000
DEST_PORT = 80

LIMIT_NOOP_VS_PING = 1.2


def judge(value, limit):
    if value is None:
        return 'n/a'
    return 'PASS' if value <= limit else 'FAIL'


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ------------------------------------------------------------------------------------ the bench

class NatBench(object):
    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.netns = '%s-%d' % (NETNS_PREFIX, os.getpid())
        self.tmp = None
        self.ruleset_file = None
        self.env = self.ansible_env()
        self.forwards = [{'proto': 'tcp', 'port': FIRST_PORT + i,
                          'dest': str(SOURCE.network_address + 1 + i), 'dest_port': DEST_PORT}
                         for i in range(self.n)]
        self.nft = None  # the module's _nft module_utils, imported from the repository
        self.transaction = None
        self.desired = None

    # ------------------------------------------------------------------ environment

    def ansible_env(self):
        """The environment of scripts/env.sh, with benchmarks/ansible.cfg and pipelining on."""
        base = caller_env()
        rc, out = run(['bash', '-c', '. "$1/scripts/env.sh" && env -0', 'env', REPO], env=base)
        if rc != 0:
            raise BenchError('cannot source scripts/env.sh')
        env = dict(item.split('=', 1) for item in out.split('\0') if '=' in item)
        env.update({
            'ANSIBLE_CONFIG': os.path.join(HERE, 'ansible.cfg'),
            'ANSIBLE_PIPELINING': 'True',
            'ANSIBLE_FORCE_COLOR': 'False',
            'ANSIBLE_NOCOLOR': 'True',
            # the default callback, like the container benchmark: "changed: [...]" lines are counted
            'ANSIBLE_CALLBACK_RESULT_FORMAT': 'yaml',
        })
        env['PATH'] = os.path.join(VENV, 'bin') + os.pathsep + env.get('PATH', '')
        return env

    @staticmethod
    def ensure_collection_link():
        """.build/collections/ansible_collections/lxcfleet/lxc -> the repository."""
        parent = os.path.join(COLLECTIONS, 'ansible_collections', 'lxcfleet')
        link = os.path.join(parent, 'lxc')
        if os.path.islink(link) or os.path.exists(link):
            return
        os.makedirs(parent, exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass  # created by someone else meanwhile

    def render(self):
        """The transaction the module writes for these forwards, from the module's own code."""
        if COLLECTIONS not in sys.path:
            sys.path.insert(0, COLLECTIONS)
        self.nft = importlib.import_module('ansible_collections.lxcfleet.lxc.plugins.module_utils._nft')
        spec = self.nft.validate({'table': TABLE, 'netns': self.netns,
                                  'masquerade': [{'source': str(SOURCE), 'out_interface': None}],
                                  'forward_bridges': [], 'port_forwards': self.forwards})
        self.desired = self.nft.build_model(spec)
        self.transaction = self.nft.transaction(TABLE, self.desired)
        self.tmp = tempfile.mkdtemp(prefix='lfbnat-')
        self.ruleset_file = os.path.join(self.tmp, 'ruleset.nft')
        with open(self.ruleset_file, 'w', encoding='utf-8') as f:
            f.write(self.transaction)

    # ------------------------------------------------------------------ netns

    def netns_exec(self, argv, **kwargs):
        return run(['ip', 'netns', 'exec', self.netns] + argv, **kwargs)

    def create_netns(self):
        run(['ip', 'netns', 'add', self.netns])
        self.netns_exec(['ip', 'link', 'set', 'lo', 'up'])

    def delete_table(self):
        rc, out = self.netns_exec(['nft', '-j', 'list', 'tables'], check=False)
        if rc == 0 and any(o.get('table', {}).get('name') == TABLE
                           for o in json.loads(out or '{}').get('nftables', [])):
            self.netns_exec(['nft', 'delete', 'table', 'inet', TABLE])

    @staticmethod
    def stale_netns():
        if not os.path.isdir('/var/run/netns'):
            return []
        return [n for n in os.listdir('/var/run/netns') if n.startswith(NETNS_PREFIX + '-')]

    def clean(self, stale=False):
        """Delete our netns (with it the table); with stale, every lfbnat-* netns (lock held)."""
        names = self.stale_netns() if stale else [self.netns]
        for name in names:
            if os.path.exists(os.path.join('/var/run/netns', name)):
                run(['ip', 'netns', 'delete', name], check=False, timeout=30)
        if self.tmp and os.path.isdir(self.tmp):
            shutil.rmtree(self.tmp)
        left = [n for n in names if os.path.exists(os.path.join('/var/run/netns', n))]
        if left:
            raise BenchError('could not delete netns %s' % ', '.join(left))

    # ------------------------------------------------------------------ verification

    def verify(self, what):
        """The live table holds N DNAT forwards per DNAT chain and equals the desired model."""
        out = self.netns_exec(['nft', '-j', 'list', 'table', 'inet', TABLE])[1]
        data = json.loads(out)
        dnat = {'prerouting': 0, 'output': 0}
        targets = set()
        for obj in data.get('nftables', []):
            rule = obj.get('rule') if isinstance(obj, dict) else None
            if not rule:
                continue
            for expr in rule.get('expr', []):
                if isinstance(expr, dict) and 'dnat' in expr:
                    dnat[rule['chain']] = dnat.get(rule['chain'], 0) + 1
                    targets.add((expr['dnat'].get('addr'), expr['dnat'].get('port')))
        if dnat['prerouting'] != self.n or dnat['output'] != self.n or len(targets) != self.n:
            raise BenchError('%s: live table inet %s has %d DNAT rules in prerouting, %d in output, '
                             '%d distinct targets; expected %d each'
                             % (what, TABLE, dnat['prerouting'], dnat['output'], len(targets),
                                self.n))
        live = self.nft.model_from_json(data, TABLE)
        if not self.nft.same(live, self.desired):
            raise BenchError('%s: live table inet %s differs from the rendered one' % (what, TABLE))
        return dnat['prerouting']

    # ------------------------------------------------------------------ the runs

    def playbook(self, name, extra):
        book = os.path.join(PLAYBOOKS, '%s.yml' % name)
        argv = [os.path.join(VENV, 'bin', 'ansible-playbook'), '-i',
                os.path.join(HERE, 'inventory.ini'), book, '-e', json.dumps(extra)]
        start = time.monotonic()
        rc, out = run(argv, check=False, timeout=120, env=self.env, cwd=HERE)
        elapsed = time.monotonic() - start
        if rc != 0:
            raise BenchError('%s: ansible-playbook exit %d\n%s' % (name, rc, tail(out)))
        changed = sum(1 for line in out.splitlines() if line.startswith('changed: ['))
        ok = sum(1 for line in out.splitlines() if line.startswith('ok: ['))
        return elapsed, changed, ok

    def ping(self, loop=False):
        if loop:
            t, changed, ok = self.playbook('nat_ping_loop', {'lfb_items': ['%s-item' % TABLE]})
        else:
            t, changed, ok = self.playbook('nat_ping', {})
        if ok != 1 or changed:
            raise BenchError('ping%s: %d ok, %d changed; expected 1 ok'
                             % (' loop' if loop else '', ok, changed))
        return t

    def ours(self):
        return self.playbook('nat_ours', {'lfb_table': TABLE, 'lfb_netns': self.netns,
                                          'lfb_source': str(SOURCE),
                                          'lfb_forwards': self.forwards})

    def raw_apply(self):
        argv = ['ip', 'netns', 'exec', self.netns, 'nft', '-f', self.ruleset_file]
        start = time.monotonic()
        run(argv)
        return time.monotonic() - start

    def raw_read(self):
        """What a check costs without Ansible: the two nft -j reads the module makes."""
        start = time.monotonic()
        self.netns_exec(['nft', '-j', 'list', 'tables'])
        self.netns_exec(['nft', '-j', 'list', 'table', 'inet', TABLE])
        return time.monotonic() - start

    def measure(self):
        """One repeat: raw apply, ping, ours apply, ours no-op, ping again, ping loop; verified."""
        r = {}
        self.delete_table()
        r['raw_apply'] = self.raw_apply()
        self.verify('raw apply')
        r['raw_read'] = self.raw_read()
        self.delete_table()
        r['ping_1'] = self.ping()
        t, changed, ok = self.ours()
        if changed != 1:
            raise BenchError('ours apply: %d changed, %d ok; expected changed' % (changed, ok))
        r['ours_apply'] = t
        r['dnat_after_apply'] = self.verify('ours apply')
        t, changed, ok = self.ours()
        if changed or ok != 1:
            raise BenchError('ours no-op: %d changed, %d ok; expected changed=false'
                             % (changed, ok))
        r['ours_noop'] = t
        r['dnat_after_noop'] = self.verify('ours no-op')
        r['ping_2'] = self.ping()
        r['ping_loop'] = self.ping(loop=True)
        r['ping_floor'] = (r['ping_1'] + r['ping_2']) / 2
        self.delete_table()
        return r


# ---------------------------------------------------------------------------------- reporting

FIGURES = ('raw_apply', 'raw_read', 'ping_floor', 'ping_loop', 'ours_apply', 'ours_noop')


def summarize(runs):
    """Medians of every figure, and ratios taken within each repeat, median over the repeats."""
    result = {key: median(r[key] for r in runs) for key in FIGURES}
    ratios = [
        {'name': 'ours_noop / ping_floor', 'limit': LIMIT_NOOP_VS_PING,
         'value': median(ratio(r['ours_noop'], r['ping_floor']) for r in runs)},
        {'name': 'ours_noop / ping_loop_1 (info)', 'limit': LIMIT_NOOP_VS_PING,
         'value': median(ratio(r['ours_noop'], r['ping_loop']) for r in runs)},
        {'name': 'ours_apply / raw_apply (info)', 'limit': None,
         'value': median(ratio(r['ours_apply'], r['raw_apply']) for r in runs)},
        {'name': '(ours_apply - ping_floor) / raw_apply (info)', 'limit': None,
         'value': median(ratio(r['ours_apply'] - r['ping_floor'], r['raw_apply'])
                         for r in runs)},
        {'name': 'ours_apply / ping_floor (info)', 'limit': None,
         'value': median(ratio(r['ours_apply'], r['ping_floor']) for r in runs)},
    ]
    for r in ratios:
        r['result'] = judge(r['value'], r['limit']) if r['limit'] is not None else 'info'
    if result['ping_floor'] is not None:
        result['budget_ours_noop_max_s'] = LIMIT_NOOP_VS_PING * result['ping_floor']
    result['ratios'] = ratios
    return result


def print_text(report):
    print('lxcfleet nat benchmark: N=%d port forwards, repeat=%d, %s'
          % (report['n'], report['repeat'], report['host']['summary']))
    print('netns %s, table inet %s, transaction of %d lines (%d bytes)'
          % (report['netns'], TABLE, report['transaction_lines'], report['transaction_bytes']))
    print()
    s = report.get('summary') or {}
    labels = {
        'raw_apply': 'raw apply  (ip netns exec NS nft -f FILE, the whole transaction)',
        'raw_read': 'raw read   (nft -j list tables + list table, info)',
        'ping_floor': 'ping floor (one ansible.builtin.ping task, mean of 2 per repeat)',
        'ping_loop': 'ping loop  (ansible.builtin.ping, loop of 1 item, info)',
        'ours_apply': 'ours apply (one lxcfleet.lxc.nat task, N forwards)',
        'ours_noop': 'ours no-op (the same task again, changed=false)',
    }
    runs = report['runs']
    for key in FIGURES:
        if s.get(key) is None:
            continue
        per_run = ' '.join('%.3f' % r[key] for r in runs)
        print('%-68s %7.3fs  runs: %s' % (labels[key], s[key], per_run))
    if runs:
        print('%-68s %s' % ('ping runs (first, second per repeat)', '  '.join(
            '%.3f %.3f' % (r['ping_1'], r['ping_2']) for r in runs)))
        print('%-68s %s' % ('DNAT rules in prerouting after apply / after no-op', '  '.join(
            '%d/%d' % (r['dnat_after_apply'], r['dnat_after_noop']) for r in runs)))
    if s.get('ratios'):
        print()
        print('ratios (each taken within one repeat, median over the repeats):')
        for r in s['ratios']:
            val = 'n/a' if r['value'] is None else '%.2f' % r['value']
            lim = '(<= %.2f)' % r['limit'] if r['limit'] is not None else ''
            print('  %-46s %7s  %-10s %s' % (r['name'], val, lim, r['result']))
    if s.get('budget_ours_noop_max_s') is not None:
        print()
        print('budget: ours no-op <= %.3fs (%.3fs above the ping floor)'
              % (s['budget_ours_noop_max_s'], s['budget_ours_noop_max_s'] - s['ping_floor']))


# ---------------------------------------------------------------------------------- main

def preflight():
    problems = []
    if os.geteuid() != 0:
        problems.append('run as root (network namespace, nftables)')
    for tool in ('ip', 'nft', 'bash'):
        if not shutil.which(tool):
            problems.append('%s not found' % tool)
    if not os.path.exists(os.path.join(VENV, 'bin', 'ansible-playbook')):
        problems.append('ansible-playbook not in %s/bin; run with the venv python' % VENV)
    if not os.path.exists('/usr/bin/python3'):
        problems.append('/usr/bin/python3 missing')
    if not os.path.exists(MODULE_FILE):
        problems.append('lxcfleet.lxc.nat not available (%s missing)' % MODULE_FILE)
    return problems


def host_info(env):
    info = {'cpus': os.cpu_count(), 'kernel': platform.release(),
            'loadavg_before': open('/proc/loadavg', encoding='ascii').read().split()[:3]}
    proc = subprocess.run(['nft', '--version'], capture_output=True, text=True, check=False)
    info['nft'] = proc.stdout.strip().split(' (')[0]
    proc = subprocess.run([os.path.join(VENV, 'bin', 'ansible'), '--version'],
                          capture_output=True, text=True, env=env, check=False)
    if proc.stdout:
        info['ansible_core'] = proc.stdout.splitlines()[0].split('core ')[-1].rstrip(']')
    info['summary'] = '%s CPUs, kernel %s, %s, ansible-core %s, load %s' % (
        info['cpus'], info['kernel'], info['nft'], info.get('ansible_core', '?'),
        ' '.join(info['loadavg_before']))
    return info


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=100,
                   help='port forwards (default 100, at most 250: one /24 of destinations)')
    p.add_argument('--repeat', type=int, default=1,
                   help='measure everything this many times, report medians (default 1)')
    p.add_argument('--clean', action='store_true',
                   help='only delete %s-* network namespaces left by a killed run, then exit'
                   % NETNS_PREFIX)
    p.add_argument('--json', action='store_true', help='print the report as JSON on stdout')
    args = p.parse_args(argv)
    if not 1 <= args.n <= 250 or args.repeat < 1:
        p.error('--n must be 1 to 250, --repeat at least 1')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problems = preflight()
    if problems:
        for problem in problems:
            log('benchmark: %s' % problem)
        return 2
    lock = open(LOCK, 'w', encoding='ascii')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log('benchmark: another nat benchmark run holds %s' % LOCK)
        return 2
    signal.signal(signal.SIGTERM, terminate)

    bench = NatBench(args)
    if args.clean:
        bench.clean(stale=True)
        log('benchmark: deleted %s-* network namespaces' % NETNS_PREFIX)
        return 0
    bench.ensure_collection_link()
    report = {'n': args.n, 'repeat': args.repeat, 'netns': bench.netns, 'table': TABLE,
              'host': host_info(bench.env), 'runs': []}
    status = 0
    try:
        bench.clean(stale=True)  # what a killed run left (the lock says no run is active)
        bench.render()
        report['transaction_lines'] = bench.transaction.count('\n')
        report['transaction_bytes'] = len(bench.transaction.encode('utf-8'))
        bench.create_netns()
        log('benchmark: warm-up (untimed ping run)')
        bench.ping()
        for i in range(args.repeat):
            log('benchmark: run %d of %d, N=%d' % (i + 1, args.repeat, args.n))
            r = bench.measure()
            report['runs'].append(r)
            log('benchmark:   raw apply %.3fs, ping %.2fs, ours apply %.2fs, no-op %.2fs'
                % (r['raw_apply'], r['ping_floor'], r['ours_apply'], r['ours_noop']))
    except BenchError as e:
        log('benchmark: ERROR: %s' % e)
        report['error'] = str(e)
        status = 1
    except KeyboardInterrupt as e:
        log('benchmark: interrupted (%s)' % (e or 'SIGINT'))
        report['error'] = 'interrupted'
        status = 1
    finally:
        try:
            bench.clean()
        except BenchError as e:
            log('benchmark: ERROR during cleanup: %s' % e)
            status = 1

    report.setdefault('transaction_lines', 0)
    report.setdefault('transaction_bytes', 0)
    if report['runs'] and not status:
        report['summary'] = summarize(report['runs'])
    return emit(report, status, args.json, print_text)


if __name__ == '__main__':
    sys.exit(main())
