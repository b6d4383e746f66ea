# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The options of an image (the image module's, and the container module's `image` dict).

Kept apart from _image so that the container module's argument spec does not load the image code:
a run on an existing container never needs it (docs/benchmarks.md, no-op cost).
"""

from __future__ import annotations

DEFAULT_SERVER = "https://images.linuxcontainers.org"

IMAGE_OPTIONS = dict(
    dist=dict(type="str"),
    release=dict(type="str"),
    arch=dict(type="str"),
    variant=dict(type="str", default="default"),
    server=dict(type="str", default=DEFAULT_SERVER),
    keyring=dict(type="path"),
    fingerprint=dict(type="str"),
    allow_http=dict(type="bool", default=False),
    ca_path=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=30),
    retries=dict(type="int", default=3),
    cache_dir=dict(type="path"),
    refresh=dict(type="str", choices=["never", "expired"], default="expired"),
    use_expired_offline=dict(type="bool", default=False),
)
