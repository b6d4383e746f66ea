# Writes archives that container_archive must refuse on import, one per case, into the folder given as
# the first argument; prints the case names (one a line). Run with python3 (no shebang on purpose).
import io
import json
import os
import sys
import tarfile

FOLDER = sys.argv[1]
MANIFEST = {"format": "lxcfleet.lxc/container-archive", "version": 1, "name": "evil", "lxc_path": "/var/lib/lxc",
            "container_dir": "/var/lib/lxc/evil", "arch": "x86_64", "unprivileged": False, "idmap": [],
            "backing_store": "dir", "compression": "none", "created": "2026-01-01T00:00:00Z"}


def data(archive, name, text):
    info = tarfile.TarInfo(name)
    raw = text.encode()
    info.size = len(raw)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(raw))


def entry(archive, name, kind, target=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    info.mode = 0o755
    archive.addfile(info)


def good_start(archive, manifest=None):
    data(archive, "lxcfleet-archive.json", json.dumps(manifest or MANIFEST))
    data(archive, "config", "lxc.uts.name = evil\n")
    entry(archive, "rootfs", tarfile.DIRTYPE)
    entry(archive, "rootfs/etc", tarfile.DIRTYPE)


CASES = {
    "dotdot": lambda a: (good_start(a), data(a, "rootfs/../../../../tmp/pwned", "x")),
    "absolute": lambda a: (good_start(a), data(a, "/tmp/pwned", "x")),
    "outside": lambda a: (good_start(a), data(a, "other/file", "x")),
    "through_symlink": lambda a: (good_start(a), entry(a, "rootfs/etc/evil", tarfile.SYMTYPE, "/etc"),
                                  data(a, "rootfs/etc/evil/pwned", "x")),
    "hardlink_out": lambda a: (good_start(a), entry(a, "rootfs/etc/shadow", tarfile.LNKTYPE, "/etc/shadow")),
    "no_manifest": lambda a: (data(a, "config", "lxc.uts.name = evil\n"), entry(a, "rootfs", tarfile.DIRTYPE)),
    "future_version": lambda a: good_start(a, dict(MANIFEST, version=99)),
}

for case, build in CASES.items():
    with tarfile.open(os.path.join(FOLDER, case + ".tar"), "w", format=tarfile.PAX_FORMAT) as archive:
        build(archive)
    print(case)
