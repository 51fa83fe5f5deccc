"""Hooks of the `ates dev` fuzzing test (fuzz.rs)."""

import uuid

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Every Idempotency-Key sent is new: the API refuses (422, by design) a key used before with
    another body, and the fuzzer would otherwise repeat the few keys it generates."""
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
