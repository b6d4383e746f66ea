# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image cache: index parsing, verification, unpack filter, atomic swap, and the whole path against a
tiny image server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _image
from ansible_collections.lxcfleet.lxc.plugins.module_utils._image import (
    IMAGE_OPTIONS,
    ImageError,
    ImageHTTPError,
    ImageNetworkError,
    ImageVerifyError,
    cache_path,
    check_redirect,
    check_rootfs,
    ensure_cached,
    gpg_verify,
    host_arch,
    list_images,
    normalize_fingerprint,
    normalize_server,
    parse_index,
    parse_sums,
    read_entry,
    swap_in,
    unpack_meta,
    validate_params,
)

BUILD1 = "20240101_05:24"
BUILD2 = "20240102_05:24"


# --- archives ------------------------------------------------------------------------------------

def make_tar(members) -> bytes:
    """members: list of (name, kind, data-or-linkname); kind file, dir, sym, lnk, chr, fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "lnk"):
                info.linkname = data
            if kind == "chr":
                info.devmajor, info.devminor = 1, 3
            info.mode = 0o755
            tar.addfile(info)
    return buf.getvalue()


def good_rootfs(tag=b"1") -> bytes:
    return make_tar([(".", "dir", None), ("./bin", "dir", None), ("./bin/busybox", "file", b"busybox " + tag),
                     ("./bin/sh", "sym", "busybox"), ("./etc", "dir", None), ("./etc/localtime", "sym", "/usr/share/zoneinfo/UTC"),
                     ("./bin/ash", "lnk", "./bin/busybox")])


def good_meta(expiry=None, extra=None) -> bytes:
    expiry = int(time.time()) + 86400 if expiry is None else expiry
    members = [(".", "dir", None), ("./config", "file", b"lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = x86_64\n"),
               ("./config-user", "file", b"lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\n"),
               ("./expiry", "file", b"%d\n" % expiry), ("./templates", "file", b"/etc/hostname\n/etc/hosts\n"),
               ("./excludes-user", "file", b"./dev/*\n"), ("./create-message", "file", b"hello\n")]
    return make_tar(members + list(extra or []))


def sums_of(files: dict) -> bytes:
    return "".join("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name) for name, data in files.items()).encode()


class Server:
    """Files by URL path, a request log, and switches for failures."""

    def __init__(self):
        self.files = {}
        self.log = []
        self.fail = {}        # path -> list of statuses to answer first (e.g. [503, 503])
        self.redirects = {}   # path -> Location
        self.truncate = set()
        self.httpd = None
        self.thread = None
        self.port = None

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def add_build(self, dist, release, arch, variant, build, rootfs, meta, sums=None, index="system"):
        path = "/images/%s/%s/%s/%s/%s/" % (dist, release, arch, variant, build)
        self.files[path + "rootfs.tar.xz"] = rootfs
        self.files[path + "meta.tar.xz"] = meta
        self.files[path + "SHA256SUMS"] = sums if sums is not None else sums_of({"rootfs.tar.xz": rootfs, "meta.tar.xz": meta})
        for mode in ("system", "user") if index == "both" else (index,):
            key = "/meta/1.0/index-%s" % mode
            self.files[key] = self.files.get(key, b"") + ("%s;%s;%s;%s;%s;%s\n" % (dist, release, arch, variant, build, path)).encode()
        return path

    def start(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.log.append(self.path)
                path = self.path
                queue = owner.fail.get(path)
                if queue:
                    status = queue.pop(0)
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = owner.files.get(path.replace("%3A", ":"))
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if path in owner.truncate:
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@pytest.fixture
def server():
    srv = Server()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(_image, "BACKOFF", 0.01)


class FakeModule:
    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def params(srv, tmp_path, **kw):
    out = dict(dist="busybox", release="1.36", arch="amd64", variant="default", server=srv.url() if srv else "http://127.0.0.1:9",
               allow_http=True, cache_dir=str(tmp_path / "cache"), timeout=5, retries=2)
    out.update(kw)
    return out


def snapshot(folder):
    """Every file under ``folder`` with its sha256 (and symlinks with their target)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    out[rel] = hashlib.sha256(handle.read()).hexdigest()
            else:
                out[rel] = "dir"
    return out


# --- parameters -----------------------------------------------------------------------------------

def test_image_options_shape():
    assert IMAGE_OPTIONS["variant"]["default"] == "default"
    assert IMAGE_OPTIONS["server"]["default"] == "https://images.linuxcontainers.org"
    assert IMAGE_OPTIONS["refresh"]["choices"] == ["never", "expired"]
    assert IMAGE_OPTIONS["allow_http"]["default"] is False


def test_host_arch_names():
    assert host_arch("x86_64") == "amd64"
    assert host_arch("aarch64") == "arm64"
    assert host_arch("armv7l") == "armhf"
    assert host_arch("i686") == "i386"
    assert host_arch("ppc64le") == "ppc64el"
    assert host_arch("s390x") == "s390x"


def test_server_normalized_and_http_refused():
    assert normalize_server("images.example.org", False) == "https://images.example.org"
    assert normalize_server("https://h:8443/sub/", False) == "https://h:8443/sub"
    with pytest.raises(ImageError, match="allow_http"):
        normalize_server("http://127.0.0.1:1", False)
    assert normalize_server("http://127.0.0.1:1", True) == "http://127.0.0.1:1"
    for bad in ("ftp://h", "https://user@h", "https://h/?q=1", "file:///etc"):
        with pytest.raises(ImageError, match="server"):
            normalize_server(bad, True)


@pytest.mark.parametrize("option,value", [("dist", "../etc"), ("release", "a/b"), ("arch", ".."), ("variant", ""), ("dist", "-x"),
                                          ("release", "a b"), ("dist", None)])
def test_bad_fields_name_the_option(option, value, tmp_path):
    kw = dict(dist="busybox", release="1", arch="amd64", variant="default", cache_dir=str(tmp_path))
    kw[option] = value
    if option == "variant":
        kw[option] = "."
    with pytest.raises(ImageError, match="^%s" % option):
        validate_params(kw)


def test_fingerprint_and_keyring_checked(tmp_path):
    fpr = "7a1f 0a5d 4c7e 6c3f 2e0d  8b3a 1d3e 9f4b 0c2a 6e11"
    assert normalize_fingerprint(fpr) == "7A1F0A5D4C7E6C3F2E0D8B3A1D3E9F4B0C2A6E11"
    assert normalize_fingerprint("0x" + "A" * 40) == "A" * 40
    with pytest.raises(ImageError, match="fingerprint"):
        normalize_fingerprint("DEADBEEF")
    with pytest.raises(ImageError, match="keyring"):
        validate_params(dict(dist="d", release="r", keyring=str(tmp_path / "missing.gpg"), cache_dir=str(tmp_path)))


def test_cache_path_is_the_templates_layout(tmp_path):
    p = dict(dist="debian", release="bookworm", arch="arm64", cache_dir=str(tmp_path))
    assert cache_path(p, True) == str(tmp_path / "download/debian/bookworm/arm64/default")
    assert cache_path(p, False) == cache_path(p, True)


def test_default_arch_is_hosts(tmp_path):
    p = validate_params(dict(dist="d", release="r", cache_dir=str(tmp_path)))
    assert p["arch"] == host_arch()


# --- index --------------------------------------------------------------------------------------

def test_parse_index_rejects_bad_lines_keeps_good_ones():
    text = "\n".join([
        "busybox;1.36;amd64;default;20240101_05:24;/images/busybox/1.36/amd64/default/20240101_05:24/",
        "../../etc;1;amd64;default;1;/images/x/",
        "busybox;1.36;amd64;default;..;/images/x/",
        "busybox;1.36;amd64;default;1;/images/../../x/",
        "busybox;1.36;amd64;default;1;images/relative/",
        "busybox;a/b;amd64;default;1;/images/x/",
        "busybox;;amd64;default;1;/images/x/",
        "too;few;fields",
        "busybox;1.36;amd64;default;1;/images/x/;extra",
        "busybox;1.36;amd64;de fault;1;/images/x/",
        "busybox;1.36;amd64;default;1;https://evil.example/x/",
        "evil..;1.36;amd64;default;1;/images/x/",
        "busybox;1.36;amd64;default;1;/images/a..b/",
        "",
        "alpine;3.20;arm64;cloud;20240101_13:00;/images/alpine/3.20/arm64/cloud/20240101_13:00/",
    ])
    entries, rejected = parse_index(text)
    assert [e["dist"] for e in entries] == ["busybox", "alpine"]
    assert entries[0]["build_id"] == "20240101_05:24"
    assert [number for number, dummy in rejected] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]


def test_parse_sums():
    digest = "a" * 64
    sums = parse_sums("%s  rootfs.tar.xz\n%s *meta.tar.xz\nnot a line\n%s  ./sub/x\n" % (digest, "b" * 64, "c" * 64))
    assert sums == {"rootfs.tar.xz": digest, "meta.tar.xz": "b" * 64, "x": "c" * 64}


def test_redirect_rules():
    check_redirect("https://a/x", "https://b/y", False)
    check_redirect("http://a/x", "https://b/y", True)
    check_redirect("http://a/x", "http://b/y", True)
    with pytest.raises(ImageError, match="downgrades https to http"):
        check_redirect("https://a/x", "http://a/y", True)
    with pytest.raises(ImageError, match="allow_http"):
        check_redirect("http://a/x", "http://a/y", False)
    with pytest.raises(ImageError, match="not http or https"):
        check_redirect("https://a/x", "file:///etc/passwd", True)


# --- archives -------------------------------------------------------------------------------------

def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_unpack_meta_plain_files(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    names = unpack_meta(write(tmp_path, "meta.tar.xz", good_meta()), str(dest))
    assert sorted(names) == ["config", "config-user", "create-message", "excludes-user", "expiry", "templates"]
    assert (dest / "config").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("member,match", [
    (("../evil", "file", b"x"), "plain file name"),
    (("/etc/evil", "file", b"x"), "plain file name"),
    (("sub/config2", "file", b"x"), "plain file name"),
    (("link", "sym", "/etc/shadow"), "symbolic link"),
    (("hard", "lnk", "/etc/shadow"), "hard link"),
    (("null", "chr", None), "device"),
    (("fifo", "fifo", None), "fifo"),
    (("sub", "dir", None), "folder"),
    (("build_id", "file", b"x"), "replace a file of the cache"),
    (("rootfs.tar.xz", "file", b"x"), "replace a file of the cache"),
    (("templates", "file", b"/etc/../../../etc/passwd\n"), "appears twice"),
])
def test_unpack_meta_refuses(member, match, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ImageVerifyError, match=match):
        unpack_meta(write(tmp_path, "meta.tar.xz", good_meta(extra=[member])), str(dest))
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name,content,match", [
    ("templates", b"/etc/hostname\n/../../../etc/passwd\n", "leaves the root"),
    ("excludes-user", b"./dev/* --to-command=sh\n", "extra arguments"),
    ("templates", b"/etc/host\x1bname\n", "control characters"),
])
def test_unpack_meta_checks_templates_and_excludes(name, content, match, tmp_path):
    members = [("config", "file", b"x\n"), (name, "file", content)]
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ImageVerifyError, match=match):
        unpack_meta(write(tmp_path, "meta.tar.xz", make_tar(members)), str(dest))


def test_unpack_meta_needs_config_and_a_tar(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ImageVerifyError, match="no config"):
        unpack_meta(write(tmp_path, "meta.tar.xz", make_tar([("expiry", "file", b"1\n")])), str(dest))
    with pytest.raises(ImageVerifyError, match="not a valid"):
        unpack_meta(write(tmp_path, "meta2.tar.xz", b"garbage"), str(dest))


@pytest.mark.parametrize("members,match", [
    ([("./etc/evil", "sym", "/etc"), ("./etc/evil/pwned", "file", b"x")], "written through the symlink"),
    ([("./dev/evil-mem", "chr", None)], "device node"),
])
def test_check_rootfs_links_and_devices(members, match, tmp_path):
    with pytest.raises(ImageVerifyError, match=match):
        check_rootfs(write(tmp_path, "bad.tar.xz", make_tar(members)))


def test_check_rootfs_allows_harmless_devices(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, minor in (("./dev/null", 3), ("dev/zero", 5)):
            info = tarfile.TarInfo(name)
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, minor
            tar.addfile(info)
    assert check_rootfs(write(tmp_path, "dev.tar.xz", buf.getvalue()))["members"] == 2


def test_check_rootfs(tmp_path):
    assert check_rootfs(write(tmp_path, "ok.tar.xz", good_rootfs()))["members"] == 7
    for i, members in enumerate([[("../../etc/passwd", "file", b"x")], [("/etc/passwd", "file", b"x")],
                                 [("./etc/x", "lnk", "../../../etc/shadow")], [("./etc/y", "lnk", "/etc/shadow")]]):
        with pytest.raises(ImageVerifyError, match="escapes the rootfs|points outside the rootfs"):
            check_rootfs(write(tmp_path, "bad%d.tar.xz" % i, make_tar(members)))


# --- swap ---------------------------------------------------------------------------------------

def test_swap_in_exchange_and_fallback(tmp_path):
    for exchange in (_image._exchange, lambda src, dst: False):
        final, new = tmp_path / "default", tmp_path / "default.new-1"
        final.mkdir(exist_ok=True)
        (final / "build_id").write_text("old\n")
        new.mkdir()
        (new / "build_id").write_text("new\n")
        swap_in(str(new), str(final), exchange=exchange)
        assert (final / "build_id").read_text() == "new\n"
        assert sorted(os.listdir(tmp_path)) == ["default"]
        shutil.rmtree(final)
    new.mkdir()
    swap_in(str(new), str(final))
    assert final.is_dir() and not new.exists()


# --- gpg ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory):
    if not shutil.which("gpg") or not shutil.which("gpgv"):
        pytest.skip("gpg and gpgv are needed")
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=str(home))

    def gpg(*args, **kw):
        return subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""] + list(args),
                              env=env, check=True, capture_output=True, **kw)

    keys = {}
    for name in ("good", "other"):
        gpg("--quick-gen-key", "%s@lxcfleet.test" % name, "ed25519", "sign", "never")
        out = gpg("--with-colons", "--list-keys", "%s@lxcfleet.test" % name, text=True).stdout
        fpr = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")][0]
        keyring = home / ("%s.gpg" % name)
        keyring.write_bytes(gpg("--export", fpr).stdout)
        keys[name] = (fpr, str(keyring))

    def sign(data: bytes, name="good") -> bytes:
        return gpg("--armor", "--local-user", keys[name][0], "--detach-sign", input=data).stdout

    return keys, sign


def test_gpg_verify(gpg_key, tmp_path):
    keys, sign = gpg_key
    sums = write(tmp_path, "SHA256SUMS", b"x\n")
    sig = write(tmp_path, "SHA256SUMS.asc", sign(b"x\n"))
    assert gpg_verify(sums, sig, keys["good"][1], None) == keys["good"][0]
    assert gpg_verify(sums, sig, keys["good"][1], keys["good"][0]) == keys["good"][0]
    with pytest.raises(ImageVerifyError, match="fingerprint"):
        gpg_verify(sums, sig, keys["good"][1], keys["other"][0])
    with pytest.raises(ImageVerifyError, match="bad or untrusted"):
        gpg_verify(sums, sig, keys["other"][1], None)
    with pytest.raises(ImageVerifyError, match="bad or untrusted"):
        gpg_verify(write(tmp_path, "SHA256SUMS2", b"y\n"), sig, keys["good"][1], None)


# --- end to end against the local server ---------------------------------------------------------

def add_good(srv, build=BUILD1, tag=b"1", expiry=None, index="both"):
    rootfs, meta = good_rootfs(tag), good_meta(expiry)
    return srv.add_build("busybox", "1.36", "amd64", "default", build, rootfs, meta, index=index), rootfs, meta


def test_fetch_then_cache_hit_without_request(server, tmp_path):
    add_good(server)
    module = FakeModule()
    result = ensure_cached(module, params(server, tmp_path), unprivileged=False)
    assert result["changed"] and result["fetched"]
    assert result["build_id"] == BUILD1 and result["verified"] == "sha256"
    folder = result["path"]
    assert folder == str(tmp_path / "cache/download/busybox/1.36/amd64/default")
    assert sorted(os.listdir(folder)) == [".lxcfleet-image.json", ".rootfs.tar.xz.lxcfleet-checked.json", "build_id", "config",
                                          "config-user", "create-message", "excludes-user", "expiry", "rootfs.tar.xz", "templates"]
    assert open(os.path.join(folder, "build_id"), encoding="utf-8").read() == BUILD1 + "\n"
    assert result["meta"]["config"] == os.path.join(folder, "config")
    assert result["meta"]["fstab"] is None
    assert result["expiry"] > time.time()
    # Compat suffix first, then the plain index.
    assert server.log[:2] == ["/meta/1.0/index-system.7", "/meta/1.0/index-system"]
    # Nothing left behind next to the entry or in the cache base.
    assert sorted(os.listdir(os.path.dirname(folder))) == [".default.lxcfleet-lock", "default"]
    assert sorted(os.listdir(tmp_path / "cache")) == ["download"]

    count = len(server.log)
    again = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    assert not again["changed"] and not again["fetched"] and again["build_id"] == BUILD1
    assert len(server.log) == count
    server.stop()
    offline = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    assert offline["build_id"] == BUILD1 and not offline["changed"]


def test_unprivileged_reads_index_user_and_config_user(server, tmp_path):
    add_good(server, index="user")
    result = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=True)
    assert server.log[0] == "/meta/1.0/index-user.7"
    assert result["meta"]["config"].endswith("/config-user")


def test_check_mode_writes_nothing(server, tmp_path):
    add_good(server)
    result = ensure_cached(FakeModule(check_mode=True), params(server, tmp_path), unprivileged=False)
    assert result["changed"] and result["fetched"] and result["build_id"] == BUILD1
    assert result["rootfs"] is None
    assert not (tmp_path / "cache").exists()
    assert not any(path.endswith(".tar.xz") for path in server.log)


def test_latest_and_absent(server, tmp_path):
    add_good(server)
    ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    # The server publishes a newer build: present keeps the valid entry, latest fetches it.
    server.files.clear()
    add_good(server, build=BUILD2, tag=b"2")
    assert ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)["build_id"] == BUILD1
    check = ensure_cached(FakeModule(check_mode=True), params(server, tmp_path), unprivileged=False, state="latest")
    assert check["changed"] and check["build_id"] == BUILD2 and check["before"] == BUILD1
    latest = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False, state="latest")
    assert latest["changed"] and latest["build_id"] == BUILD2 and latest["before"] == BUILD1
    assert not ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False, state="latest")["changed"]
    folder = latest["path"]
    assert sorted(os.listdir(os.path.dirname(folder))) == [".default.lxcfleet-lock", "default"]
    assert ensure_cached(FakeModule(check_mode=True), params(server, tmp_path), unprivileged=False, state="absent")["changed"]
    assert os.path.isdir(folder)
    gone = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False, state="absent")
    assert gone["changed"] and gone["before"] == BUILD2 and not os.path.exists(folder)
    assert not ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False, state="absent")["changed"]


def test_expired_entry(server, tmp_path):
    add_good(server)
    result = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    expiry_file = os.path.join(result["path"], "expiry")
    with open(expiry_file, "w", encoding="utf-8") as handle:
        handle.write("1000\n")
    # Same build on the server: nothing downloaded, a warning says so.
    module = FakeModule()
    again = ensure_cached(module, params(server, tmp_path), unprivileged=False)
    assert not again["changed"] and again["expired"] and "no newer build" in module.warnings[0]
    # refresh: never makes no request.
    count = len(server.log)
    assert not ensure_cached(FakeModule(), params(server, tmp_path, refresh="never"), unprivileged=False)["changed"]
    assert len(server.log) == count
    server.stop()
    before = snapshot(str(tmp_path / "cache"))
    with pytest.raises(ImageNetworkError, match="expired since 1970-01-01 00:16:40 UTC, server unreachable"):
        ensure_cached(FakeModule(), params(server, tmp_path, retries=0), unprivileged=False)
    module = FakeModule()
    used = ensure_cached(module, params(server, tmp_path, retries=0, use_expired_offline=True), unprivileged=False)
    assert used["build_id"] == BUILD1 and used["expired"] and "use_expired_offline" in module.warnings[0]
    assert snapshot(str(tmp_path / "cache")) == before


def test_retries_on_5xx_with_backoff_not_on_4xx(server, tmp_path, monkeypatch):
    add_good(server)
    server.fail["/meta/1.0/index-system.7"] = [503, 502]
    delays = []
    monkeypatch.setattr(_image.time, "sleep", delays.append)
    result = ensure_cached(FakeModule(), params(server, tmp_path, retries=3), unprivileged=False)
    assert result["build_id"] == BUILD1
    assert delays == [0.01, 0.02]
    assert server.log[:3] == ["/meta/1.0/index-system.7"] * 3
    server.log.clear()
    server.fail["/meta/1.0/index-system.7"] = [500, 500, 500]
    with pytest.raises(ImageNetworkError, match="HTTP 500.*after 2 retries"):
        ensure_cached(FakeModule(), params(server, tmp_path, retries=2), unprivileged=False, state="latest")
    # 4xx of the plain index is not retried.
    server.files.pop("/meta/1.0/index-system")
    server.log.clear()
    with pytest.raises(ImageHTTPError, match="404"):
        ensure_cached(FakeModule(), params(server, tmp_path, retries=3), unprivileged=False, state="latest")
    assert server.log == ["/meta/1.0/index-system.7", "/meta/1.0/index-system"]


def attack(server, tmp_path, **kw):
    """Run state=latest against a prepared server: it must fail and leave the existing cache as it was."""
    before = snapshot(str(tmp_path / "cache"))
    with pytest.raises(ImageError) as info:
        ensure_cached(FakeModule(), params(server, tmp_path, **kw), unprivileged=False, state="latest")
    assert snapshot(str(tmp_path / "cache")) == before
    return str(info.value)


def test_attacks_leave_the_cache_as_it_was(server, tmp_path):
    add_good(server)
    ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    rootfs2, meta2 = good_rootfs(b"2"), good_meta()

    def publish(rootfs=rootfs2, meta=meta2, sums=None):
        server.files.clear()
        return server.add_build("busybox", "1.36", "amd64", "default", BUILD2, rootfs, meta, sums=sums)

    # Bad checksum of the rootfs.
    path = publish(sums=sums_of({"rootfs.tar.xz": b"other", "meta.tar.xz": meta2}))
    assert "rootfs.tar.xz: sha256" in attack(server, tmp_path)
    # No checksum line at all.
    publish(sums=sums_of({"meta.tar.xz": meta2}))
    assert "lists no checksum for rootfs.tar.xz" in attack(server, tmp_path)
    # Truncated body (Content-Length says more): retried, then refused.
    path = publish()
    server.truncate.add(path + "rootfs.tar.xz")
    assert "truncated" in attack(server, tmp_path, retries=1)
    server.truncate.clear()
    # Path traversal in meta, a link in meta, a device in meta, a traversal in the rootfs.
    for meta, rootfs, match in [(good_meta(extra=[("../../evil", "file", b"x")]), rootfs2, "plain file name"),
                                (good_meta(extra=[("evil", "sym", "/etc/shadow")]), rootfs2, "symbolic link"),
                                (good_meta(extra=[("evil", "chr", None)]), rootfs2, "device"),
                                (meta2, make_tar([("../../evil", "file", b"x")]), "escapes the rootfs")]:
        publish(rootfs=rootfs, meta=meta)
        assert match in attack(server, tmp_path)
    # Redirect from the index to somewhere else on http without allow_http is covered by the server check;
    # an index with only bad lines names them.
    server.files.clear()
    server.files["/meta/1.0/index-system"] = b"busybox;1.36;amd64;default;..;/images/x/\n"
    assert "1 index line(s) were rejected" in attack(server, tmp_path)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "cache" / "evil").exists()


def test_http_refused_without_allow_http(tmp_path):
    with pytest.raises(ImageError, match="allow_http"):
        ensure_cached(FakeModule(), dict(dist="d", release="r", server="http://127.0.0.1:9", cache_dir=str(tmp_path)), False)


def test_redirect_followed_and_downgrade_refused(server, tmp_path):
    add_good(server)
    server.redirects["/meta/1.0/index-system.7"] = "/meta/1.0/index-system"
    result = ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    assert result["build_id"] == BUILD1
    assert server.log[:2] == ["/meta/1.0/index-system.7", "/meta/1.0/index-system"]
    # A redirect to http when the server is https is refused (checked on the URLs; no TLS server needed here).
    with pytest.raises(ImageError, match="downgrades"):
        check_redirect("https://127.0.0.1:1/meta/1.0/index-system.7", "http://127.0.0.1:1/x", True)


def test_gpg_pinned_key(server, tmp_path, gpg_key):
    keys, sign = gpg_key
    path, dummy, dummy2 = add_good(server)
    sums = server.files[path + "SHA256SUMS"]
    server.files[path + "SHA256SUMS.asc"] = sign(sums)
    result = ensure_cached(FakeModule(), params(server, tmp_path, keyring=keys["good"][1], fingerprint=keys["good"][0]), unprivileged=False)
    assert result["verified"] == "gpg"
    info = json.load(open(os.path.join(result["path"], ".lxcfleet-image.json"), encoding="utf-8"))
    assert info["signer"] == keys["good"][0]
    # A new build signed by another key is refused before anything is downloaded besides the sums.
    server.files.clear()
    path, dummy, dummy2 = add_good(server, build=BUILD2, tag=b"2")
    server.files[path + "SHA256SUMS.asc"] = sign(server.files[path + "SHA256SUMS"], "other")
    server.log.clear()
    assert "bad or untrusted" in attack(server, tmp_path, keyring=keys["good"][1])
    assert not any(item.endswith(".tar.xz") for item in server.log)
    assert "fingerprint" in attack(server, tmp_path, keyring=keys["other"][1], fingerprint=keys["good"][0])


def test_entry_without_signature_is_refetched_when_a_key_is_pinned(server, tmp_path, gpg_key):
    keys, sign = gpg_key
    path, dummy, dummy2 = add_good(server)
    ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    server.files[path + "SHA256SUMS.asc"] = sign(server.files[path + "SHA256SUMS"])
    result = ensure_cached(FakeModule(), params(server, tmp_path, keyring=keys["good"][1]), unprivileged=False)
    assert result["changed"] and result["verified"] == "gpg"
    assert not ensure_cached(FakeModule(), params(server, tmp_path, keyring=keys["good"][1]), unprivileged=False)["changed"]


def test_listing(server, tmp_path):
    add_good(server)
    server.add_build("alpine", "3.20", "arm64", "cloud", BUILD1, b"r", b"m")
    server.files["/meta/1.0/index-system"] += b"bad;line\n"
    ensure_cached(FakeModule(), params(server, tmp_path), unprivileged=False)
    p = dict(server=server.url(), allow_http=True, cache_dir=str(tmp_path / "cache"))
    listing = list_images(None, p, False)
    assert [(i["dist"], i["cached"]) for i in listing["images"]] == [("busybox", True), ("alpine", False)]
    assert "1 index line(s) ignored" in listing["warnings"][0]
    assert [i["dist"] for i in list_images(None, dict(p, arch="arm64"), False)["images"]] == ["alpine"]


def test_read_entry_of_a_template_written_cache(tmp_path):
    folder = tmp_path / "download/d/r/amd64/default"
    folder.mkdir(parents=True)
    assert read_entry(str(folder), False) == {"complete": False}
    for name, text in (("rootfs.tar.xz", "x"), ("config", "c"), ("config-user", "u"), ("build_id", "b1\n"), ("expiry.7", "123\n")):
        (folder / name).write_text(text)
    entry = read_entry(str(folder), True)
    assert entry["build_id"] == "b1" and entry["expiry"] == 123 and entry["info"] == {}
    assert entry["meta"]["config"] == str(folder / "config-user")
    assert read_entry(str(folder), False)["meta"]["config"] == str(folder / "config")
