"""Benchmark: the attach connection (issue 6), against community.general.lxc and SSH.

One run sets up two privileged Debian containers with Python (tests/integration/shared/debian_container.yml,
from the test bed's debootstrap host image) on a prefixed bridge (``lfbcon0``, 10.254.210.1/24), each
with an sshd inside, and then times one playbook of 50 tasks (25 ``ansible.builtin.command`` and 25
``ansible.builtin.copy`` whose content changes every run, alternating) against both containers at
once, through:

* ``ours``  -- ``lxcfleet.lxc.attach`` (lxc-attach on this machine);
* ``cg``    -- ``community.general.lxc`` (python3-lxc on the controller: Debian's bindings for Python
  3.11, put on PYTHONPATH through a folder with links to ``lxc/`` and ``_lxc*.so`` only);
* ``ssh``   -- ``ansible.builtin.ssh`` into the sshd of each container (10.254.210.11/12, Ansible's
  default ssh_args, so ControlPersist=60s; host keys checked against a known_hosts file).

Each method runs with pipelining off and on (``ANSIBLE_PIPELINING``), ``--repeat`` times, the order of
the methods rotating from one repeat to the next. Every timing is ``time.monotonic()`` around one
``ansible-playbook`` process; a run counts only if both hosts report ok=50, changed=25, failed=0.
Limits, at the same pipelining setting: ours/cg <= 1.1 and ours/ssh < 1.0.

Memory: one ``ansible.builtin.copy`` of a 200 MB file (random bytes) through ours into one container,
and the same playbook copying a 1 KB file. While each runs, every process of its session is sampled
every 20 ms for ``VmHWM`` (the kernel's own peak RSS of that process). Reported: the peak of the
worker that ran the task (a fork of ansible-playbook, so it shares the parent's pages), of the
ansible-playbook process, and of the lxc-attach children, plus ``ru_maxrss`` from ``wait4``. The limit
(< 64 MB) applies to what the 200 MB file adds: the worker's peak with 200 MB minus with 1 KB.

Run as root with the project venv::

    /opt/lxcfleet-venv/bin/python benchmarks/connection.py --repeat 3

Everything made carries the prefix ``lfbcon`` and is removed at the end, also on failure
(``--clean`` removes what an interrupted run left). Exit status: 0 when every run was done and
verified (a FAIL ratio is printed, not an exit status), 1 when a run failed, 2 on a pre-flight error.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench_common import BenchError, caller_env, log, ratio, run, tail, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
SHARED = os.path.join(REPO, 'tests', 'integration', 'shared', 'debian_container.yml')
CONFTEST = os.path.join(REPO, 'tests', 'integration', 'conftest.py')
PREFIX = 'lfbcon'
BRIDGE = PREFIX + '0'
NET = '10.254.210'
CONTAINERS = {'c1': (PREFIX + '1', NET + '.11'), 'c2': (PREFIX + '2', NET + '.12')}
DIST_PACKAGES = '/usr/lib/python3/dist-packages'
TASKS = 50
METHODS = ('ours', 'cg', 'ssh')
LIMIT_CG = 1.1
LIMIT_SSH = 1.0
LIMIT_MEM_MB = 64
BIG_MB = 200


def ansible_env():
    base = caller_env(drop=('PYTHONPATH',))
    rc, out = run(['bash', '-c', '. "$1/scripts/env.sh" && env -0', 'env', REPO], env=base)
    env = dict(item.split('=', 1) for item in out.split('\0') if '=' in item)
    env.update({'ANSIBLE_CONFIG': os.path.join(HERE, 'ansible.cfg'), 'ANSIBLE_FORCE_COLOR': 'False',
                'ANSIBLE_NOCOLOR': 'True', 'ANSIBLE_HOST_KEY_CHECKING': 'True'})
    env['PATH'] = os.path.join(VENV, 'bin') + os.pathsep + env.get('PATH', '')
    return env


def cleanup_prefix(workdir=None):
    """The integration harness's cleanup (containers, links, users with the prefix)."""
    spec = importlib.util.spec_from_file_location('lxcfleet_conftest', CONFTEST)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.cleanup_prefix(PREFIX, workdir)


def ssh_masters(control_dir):
    """ControlPersist masters of our control path folder (their argv names it)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if cmdline.startswith(b'ssh') and control_dir.encode() in cmdline:
            pids.append(int(entry))
    return pids


def recap(out):
    """{host: {ok: n, changed: n, ...}} from the PLAY RECAP."""
    hosts = {}
    for line in out.splitlines():
        match = re.match(r'^(\S+)\s+:\s+(ok=.*)$', line)
        if match:
            hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', match.group(2))}
    return hosts


class Sampler(threading.Thread):
    """Peak RSS (VmHWM) of a process and all its descendants, sampled every 20 ms. By parentage, not
    by session: Ansible's workers call setsid()."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.peaks = {}  # pid -> (kB, comm, ppid)
        self.stop_event = threading.Event()

    def sample(self):
        procs = {}
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % entry, encoding='utf-8', errors='replace') as handle:
                    stat = handle.read()
                procs[int(entry)] = (stat[stat.index('(') + 1:stat.rindex(')')], int(stat[stat.rindex(')') + 2:].split()[1]))
            except (OSError, ValueError, IndexError):
                continue
        for pid, (comm, ppid) in procs.items():
            up, hops = pid, 0
            while up not in (self.root, 0, 1) and up in procs and hops < 64:
                up, hops = procs[up][1], hops + 1
            if up != self.root:
                continue
            try:
                with open('/proc/%d/status' % pid, encoding='utf-8') as handle:
                    hwm = [int(line.split()[1]) for line in handle if line.startswith('VmHWM:')]
            except (OSError, ValueError, IndexError):
                continue
            if hwm:
                old = self.peaks.get(pid, (0, comm, ppid))
                self.peaks[pid] = (max(old[0], hwm[0]), comm, ppid)

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            time.sleep(0.02)


class Bench:
    def __init__(self, repeat, pipelining):
        self.repeat = repeat
        self.pipelining = pipelining
        self.work = tempfile.mkdtemp(prefix=PREFIX + '-')
        os.chmod(self.work, 0o755)
        self.control_dir = os.path.join(self.work, 'cp')
        os.makedirs(self.control_dir)
        self.env = ansible_env()
        self.env['ANSIBLE_SSH_CONTROL_PATH_DIR'] = self.control_dir
        self.key = os.path.join(self.work, 'id_ed25519')
        self.known_hosts = os.path.join(self.work, 'known_hosts')
        self.pylxc = os.path.join(self.work, 'pylxc')
        self.times = {}
        self.memory = {}
        self.failures = {}
        self.run_id = 0

    # ------------------------------------------------------------------ fixture

    def setup(self):
        so = [n for n in os.listdir(DIST_PACKAGES) if n.startswith('_lxc.') and n.endswith('.so')]
        if not os.path.isdir(os.path.join(DIST_PACKAGES, 'lxc')) or not so:
            raise BenchError('python3-lxc is not installed (%s/lxc, _lxc*.so)' % DIST_PACKAGES)
        os.makedirs(self.pylxc)
        for name in ['lxc'] + so:
            os.symlink(os.path.join(DIST_PACKAGES, name), os.path.join(self.pylxc, name))
        run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', PREFIX, '-f', self.key])
        with open(self.key + '.pub', encoding='utf-8') as handle:
            pub = handle.read().strip()
        tasks = [{'name': 'Bridge', 'lxcfleet.lxc.bridge': {'name': BRIDGE, 'addresses': [NET + '.1/24']}}]
        for name, addr in CONTAINERS.values():
            tasks.append({'name': 'Container ' + name, 'ansible.builtin.include_tasks': SHARED, 'vars': {
                'debian_name': name, 'debian_sshd': True, 'debian_authorized_key': pub, 'debian_repo': REPO,
                'debian_network': [{'link': BRIDGE, 'name': 'eth0', 'ipv4': [addr + '/24']}]}})
            tasks.append({'name': 'Host key of ' + name, 'ansible.builtin.lineinfile': {
                'path': self.known_hosts, 'line': '%s {{ debian_ssh_host_key }}' % addr, 'create': True,
                'mode': '0644'}})
        path = self.write('setup.yml', [{'name': 'setup', 'hosts': 'localhost', 'gather_facts': False,
                                         'tasks': tasks}])
        log('setup: bridge %s, containers %s with Python and sshd' % (
            BRIDGE, ', '.join(n for n, _a in CONTAINERS.values())))
        run(['ansible-playbook', '-i', 'localhost,', '-c', 'local', path], env=self.env, timeout=1800)
        self.inventories()
        tasks = []
        for i in range(1, TASKS // 2 + 1):
            tasks.append({'name': 'command %d' % i, 'ansible.builtin.command': {'argv': ['echo', str(i)]},
                          'changed_when': False})
            tasks.append({'name': 'copy %d' % i, 'ansible.builtin.copy': {
                'content': '{{ run_id }} %d\n' % i, 'dest': '/tmp/%s-%d.txt' % (PREFIX, i), 'mode': '0644'}})
        self.tasks = self.write('tasks.yml', [{'name': 'bench', 'hosts': 'bench', 'gather_facts': False,
                                              'tasks': tasks}])
        self.big = os.path.join(self.work, 'big.bin')
        with open(self.big, 'wb') as handle:
            for _i in range(BIG_MB):
                handle.write(os.urandom(1 << 20))
        self.small = os.path.join(self.work, 'small.bin')
        with open(self.small, 'wb') as handle:
            handle.write(os.urandom(1024))
        self.copy = self.write('copy.yml', [{'name': 'copy', 'hosts': 'c1', 'gather_facts': False, 'tasks': [
            {'name': 'copy', 'ansible.builtin.copy': {'src': '{{ src }}', 'dest': '/root/%s.bin' % PREFIX,
                                                      'mode': '0600'}}]}])

    def write(self, name, data):
        path = os.path.join(self.work, name)
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(data, handle, indent=1)
        return path

    def inventories(self):
        common = 'ansible_python_interpreter=/usr/bin/python3'
        per = {
            'ours': lambda name, addr: 'ansible_connection=lxcfleet.lxc.attach ansible_lxc_name=%s' % name,
            'cg': lambda name, addr: 'ansible_connection=community.general.lxc ansible_host=%s' % name,
            'ssh': lambda name, addr: (
                'ansible_connection=ansible.builtin.ssh ansible_host=%s ansible_user=root '
                'ansible_ssh_private_key_file=%s "ansible_ssh_common_args=-o UserKnownHostsFile=%s '
                '-o StrictHostKeyChecking=yes"' % (addr, self.key, self.known_hosts)),
        }
        self.inventory = {}
        for method, line in per.items():
            text = '[bench]\n' + ''.join('%s %s %s\n' % (host, line(name, addr), common)
                                         for host, (name, addr) in sorted(CONTAINERS.items()))
            path = os.path.join(self.work, 'inventory-%s.ini' % method)
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(text)
            self.inventory[method] = path

    def teardown(self):
        for pid in ssh_masters(self.control_dir):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for line in cleanup_prefix():
            log('cleanup: ' + line)
        shutil.rmtree(self.work, ignore_errors=True)

    # ------------------------------------------------------------------ runs

    def method_env(self, method, pipelining):
        env = dict(self.env, ANSIBLE_PIPELINING=str(pipelining))
        if method == 'cg':
            env['PYTHONPATH'] = self.pylxc
        return env

    def tasks_run(self, method, pipelining):
        self.run_id += 1
        started = time.monotonic()
        rc, out = run(['ansible-playbook', '-i', self.inventory[method], self.tasks, '-e',
                       'run_id=%d-%s' % (self.run_id, method)],
                      env=self.method_env(method, pipelining), timeout=900, check=False)
        seconds = time.monotonic() - started
        hosts = recap(out)
        want = {'ok': TASKS, 'changed': TASKS // 2, 'failed': 0, 'unreachable': 0}
        for host in CONTAINERS:
            got = hosts.get(host, {})
            if rc != 0 or any(got.get(k) != v for k, v in want.items()):
                error = [line for line in out.splitlines() if 'msg:' in line or 'ERROR' in line][:1]
                if method == 'cg' and pipelining:
                    # community.general.lxc hands the child a non-blocking stdin pipe: with pipelining,
                    # Python in the container may read EAGAIN and exit early ("Broken pipe"). Counted,
                    # not timed; the run goes on.
                    self.failures.setdefault((method, pipelining), []).append(
                        '%s: %s %s' % (host, got, error[0].strip() if error else ''))
                    log('  %-4s pipelining=%-5s FAILED after %.2f s: %s %s' % (
                        method, pipelining, seconds, host, error[0].strip() if error else got))
                    return
                raise BenchError('%s (pipelining %s): rc=%d, %s: %s\n%s' % (
                    method, pipelining, rc, host, got, tail(out)))
        self.times.setdefault((method, pipelining), []).append(seconds)
        log('  %-4s pipelining=%-5s %6.2f s' % (method, pipelining, seconds))

    def memory_run(self, label, src):
        argv = ['ansible-playbook', '-i', self.inventory['ours'], self.copy, '-e', 'src=' + src]
        out_path = os.path.join(self.work, 'copy-%s.log' % label)
        with open(out_path, 'w', encoding='utf-8') as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.method_env('ours', False),
                                    start_new_session=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        started = time.monotonic()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        seconds = time.monotonic() - started
        sampler.stop_event.set()
        sampler.join()
        with open(out_path, encoding='utf-8') as handle:
            text = handle.read()
        got = recap(text).get('c1', {})
        if os.waitstatus_to_exitcode(status) != 0 or got.get('changed') != 1 or got.get('failed') != 0:
            raise BenchError('copy %s: %s\n%s' % (label, got, tail(text)))
        peaks = sampler.peaks
        main = peaks.get(proc.pid, (0,))[0]
        # Workers are forks of ansible-playbook (same comm); lxc-attach and the shells are not.
        main_comm = peaks.get(proc.pid, (0, ''))[1]
        workers = [kb for pid, (kb, comm, ppid) in peaks.items() if pid != proc.pid and comm == main_comm]
        attach = [kb for pid, (kb, comm, ppid) in peaks.items() if comm.startswith('lxc-attach')]
        self.memory.setdefault(label, []).append({
            'seconds': seconds, 'main_kb': main, 'worker_kb': max(workers or [0]),
            'attach_kb': max(attach or [0]), 'ru_maxrss_kb': usage.ru_maxrss, 'processes': len(peaks)})
        log('  copy %-5s %5.2f s  worker %6.1f MB  ansible-playbook %6.1f MB  lxc-attach %5.1f MB  ru_maxrss %6.1f MB'
            % (label, seconds, max(workers or [0]) / 1024, main / 1024, max(attach or [0]) / 1024,
               usage.ru_maxrss / 1024))

    def measure(self):
        for i in range(self.repeat):
            log('repeat %d/%d' % (i + 1, self.repeat))
            for label, src in (('1kb', self.small), ('200mb', self.big)):
                self.memory_run(label, src)
            order = METHODS[i % len(METHODS):] + METHODS[:i % len(METHODS)]
            for pipelining in (self.pipelining if i % 2 == 0 else self.pipelining[::-1]):
                for method in order:
                    self.tasks_run(method, pipelining)

    # ------------------------------------------------------------------ report

    def report(self):
        med = {key: statistics.median(values) for key, values in self.times.items()}
        rows = ['| method | pipelining | median s | per task s | runs |', '| --- | --- | ---: | ---: | --- |']
        for pipelining in self.pipelining:
            for method in METHODS:
                values = self.times.get((method, pipelining))
                if values:
                    rows.append('| %s | %s | %.2f | %.3f | %s |' % (
                        method, 'on' if pipelining else 'off', med[(method, pipelining)],
                        med[(method, pipelining)] / (TASKS * len(CONTAINERS)), ' '.join('%.2f' % v for v in values)))
        ratios = ['| ratio | pipelining | value | limit | result |', '| --- | --- | ---: | --- | --- |']
        results = {}
        for pipelining in self.pipelining:
            ours = med.get(('ours', pipelining))
            for other, limit, text, ok in (
                    ('cg', LIMIT_CG, '<= %.1f' % LIMIT_CG, lambda r: r <= LIMIT_CG),
                    ('ssh', LIMIT_SSH, '< %.1f' % LIMIT_SSH, lambda r: r < LIMIT_SSH)):
                value = ratio(ours, med.get((other, pipelining)))
                if value is None:
                    continue
                verdict = 'PASS' if ok(value) else 'FAIL'
                results['ours/%s pipelining=%s' % (other, pipelining)] = (value, verdict)
                ratios.append('| ours / %s | %s | %.2f | %s | %s |' % (
                    other, 'on' if pipelining else 'off', value, text, verdict))
        cross = ratio(med.get(('ours', True)), med.get(('cg', False)))
        if True in self.pipelining and ('cg', True) not in med and cross is not None:
            verdict = 'PASS' if cross <= LIMIT_CG else 'FAIL'
            results['ours(pipelining on)/cg(pipelining off)'] = (cross, verdict)
            ratios.append('| ours (on) / cg (off), cg failed with pipelining (info) | mixed | %.2f | <= %.1f | %s |' % (
                cross, LIMIT_CG, verdict))
        for (method, pipelining), errors in sorted(self.failures.items()):
            done = len(self.times.get((method, pipelining), []))
            rows.append('| %s | %s | failed in %d of %d runs | | %s |' % (
                method, 'on' if pipelining else 'off', len(errors), len(errors) + done, errors[0]))
        mem = ['| copy through ours | worker peak MB | ansible-playbook peak MB | lxc-attach peak MB | '
               'ru_maxrss MB | seconds |', '| --- | ---: | ---: | ---: | ---: | ---: |']
        medmem = {}
        for label in ('1kb', '200mb'):
            runs = self.memory.get(label, [])
            if not runs:
                continue
            medmem[label] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            m = medmem[label]
            mem.append('| %s | %.1f | %.1f | %.1f | %.1f | %.2f |' % (
                label, m['worker_kb'] / 1024, m['main_kb'] / 1024, m['attach_kb'] / 1024, m['ru_maxrss_kb'] / 1024,
                m['seconds']))
        if '1kb' in medmem and '200mb' in medmem:
            delta = (medmem['200mb']['worker_kb'] - medmem['1kb']['worker_kb']) / 1024
            delta_ru = (medmem['200mb']['ru_maxrss_kb'] - medmem['1kb']['ru_maxrss_kb']) / 1024
            verdict = 'PASS' if delta < LIMIT_MEM_MB else 'FAIL'
            results['copy 200 MB: worker peak growth MB'] = (delta, verdict)
            ratios.append('| 200 MB copy: worker peak, minus the 1 KB copy (MB) | - | %.1f | < %d | %s |' % (
                delta, LIMIT_MEM_MB, verdict))
            ratios.append('| 200 MB copy: ru_maxrss, minus the 1 KB copy (MB, info) | - | %.1f | < %d | %s |' % (
                delta_ru, LIMIT_MEM_MB, 'PASS' if delta_ru < LIMIT_MEM_MB else 'FAIL'))
        print('\n'.join(rows + [''] + mem + [''] + ratios))
        return {'times': {'%s pipelining=%s' % k: v for k, v in self.times.items()}, 'memory': self.memory,
                'failures': {'%s pipelining=%s' % k: v for k, v in self.failures.items()}, 'results': results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--repeat', type=int, default=3, help='runs of each method and setting (median)')
    parser.add_argument('--pipelining', choices=('both', 'off', 'on'), default='both')
    parser.add_argument('--json', help='also write the figures to this file')
    parser.add_argument('--clean', action='store_true', help='only remove what an interrupted run left')
    args = parser.parse_args()
    if os.geteuid() != 0:
        log('run as root')
        return 2
    if args.clean:
        for line in cleanup_prefix():
            log('cleanup: ' + line)
        return 0
    if not os.path.exists(os.path.join(REPO, 'plugins', 'connection', 'attach.py')):
        log('plugins/connection/attach.py does not exist yet')
        return 2
    signal.signal(signal.SIGTERM, terminate)
    pipelining = {'both': [False, True], 'off': [False], 'on': [True]}[args.pipelining]
    bench = Bench(args.repeat, pipelining)
    try:
        bench.setup()
        bench.measure()
    except BenchError as exc:
        log('FAILED: %s' % exc)
        bench.teardown()
        return 1
    except BaseException:
        bench.teardown()
        raise
    bench.teardown()
    report = bench.report()
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
