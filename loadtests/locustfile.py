"""faktry load scenarios for locust. Pick one by user class (what ``loadtests.run`` does) or by tag:

    scenario  user classes               tag
    api       ApiClient                  api      mixed media workload, polled
    burst     BurstClient                burst    many submits at once, all awaited
    noisy     NoisyTenant + QuietTenant  noisy    one tenant floods beside quiet ones
    browse    WebUser                    browse   library pages, files, account, ledger
    soak      SoakClient                 soak     steady low rate for a long time

    python -m locust -f loadtests/locustfile.py --headless -u 5 -r 5 -t 30s \\
        --host http://127.0.0.1:8000 ApiClient          # by class
    python -m locust -f loadtests/locustfile.py ... --tags noisy   # by tag

With neither, every class runs at once. ``--tags`` keeps the classes that have a task with
one of the tags (locust alone would keep the others too, with no tasks, and fail).

Needs ``LOADTEST_KEYS_FILE`` (the tenants' API keys, see loadtests/common.py); optional
``LOADTEST_JOBS_FILE`` (every submitted job id is appended) and ``LOADTEST_DIR``.
``python -m loadtests.run`` sets them, creates tenants, and checks the outcome; prefer it.
Only loopback hosts are accepted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Locust puts this file's folder on sys.path, not the repository's.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from locust import events  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadtests.scenarios import base  # noqa: E402
from loadtests.scenarios.api import ApiClient  # noqa: E402
from loadtests.scenarios.browse import WebUser  # noqa: E402
from loadtests.scenarios.burst import BurstClient  # noqa: E402
from loadtests.scenarios.noisy import NoisyTenant, QuietTenant  # noqa: E402
from loadtests.scenarios.soak import SoakClient  # noqa: E402

__all__ = ["ApiClient", "BurstClient", "NoisyTenant", "QuietTenant", "SoakClient", "WebUser"]


@events.init.add_listener
def _setup(environment: Environment, **_: Any) -> None:
    _select_by_tags(environment)
    base.configure(environment)


@events.quitting.add_listener
def _finish(environment: Environment, **_: Any) -> None:
    base.finish(environment)


def _select_by_tags(environment: Environment) -> None:
    tags = set(getattr(environment.parsed_options, "tags", None) or ())
    if not tags:
        return
    chosen = [
        user
        for user in environment.user_classes
        if any(getattr(t, "locust_tag_set", set()) & tags for t in user.tasks)
    ]
    if not chosen:
        raise ValueError(f"no user class has a task tagged {sorted(tags)}")
    environment.user_classes[:] = chosen
