"""Load tests: locust scenarios against a running faktry, and one command that runs them.

``python -m loadtests.run SCENARIO --host http://127.0.0.1:8000`` (see loadtests/README.md).
Locust (gevent) runs in its own process; nothing here imports it except the locustfile and
``loadtests.scenarios``.
"""
