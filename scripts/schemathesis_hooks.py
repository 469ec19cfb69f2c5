"""schemathesis hooks for scripts/fuzz-api.

An Idempotency-Key is, by its contract, unique to one intended create. Hypothesis replays and
shrinks values, so it would send one key with two different bodies, which the gateway rightly
refuses (422 idempotency_key_reused) and the fuzzer would count as a valid request refused.
Every well-formed key is therefore replaced by a fresh one; malformed keys stay, so the
negative checks still see them refused.

An exception request's id cannot be guessed, so without help approve, reject and withdraw
would only ever meet 404. scripts/fuzz-api asks for a few before the run and names them in
SRGW_FUZZ_REQUEST_IDS; most cases on /requests/{id}... get one of them instead (the rest keep
the generated id, so the 404 path stays covered).
"""

import os
import random
import re
import uuid

import schemathesis

WELL_FORMED_KEY = re.compile(r"[!-~]{1,255}")
REQUEST_IDS = [i for i in os.environ.get("SRGW_FUZZ_REQUEST_IDS", "").split(",") if i]
ONE_REQUEST = re.compile(r"/requests/\{id\}(/(approve|reject|withdraw))?$")


def probes_a_missing_parameter(case):
    """A coverage case that leaves out a required parameter (such as Authorization): it is
    sent as generated, since editing it would make schemathesis send the left-out header."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return getattr(getattr(data, "scenario", None), "name", None) == "MISSING_PARAMETER"


@schemathesis.hook
def before_call(context, case, kwargs):
    """Runs before every request of every phase, so no replayed case escapes it."""
    if probes_a_missing_parameter(case):
        return
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED_KEY.fullmatch(value):
            headers[name] = str(uuid.uuid4())
    parameters = case.path_parameters
    if (
        REQUEST_IDS
        and isinstance(parameters, dict)
        and "id" in parameters
        and ONE_REQUEST.search(case.path)
        and random.random() < 0.75
    ):
        parameters["id"] = random.choice(REQUEST_IDS)
