"""Python handlers for tests/e2e/test_invoke.py: each test deploys this module with one of them.

Module-level state lives as long as the execution environment, exactly as on Lambda, so the
handlers can tell a warm environment (same ENV_ID, growing COUNT) from a fresh one.
"""

import os
import time
import uuid

# One value per execution environment: the module is imported once per environment.
ENV_ID = uuid.uuid4().hex
COUNT = 0

# Variables Lambda sets in every Python environment, reported by `context_info`.
LAMBDA_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "TZ",
)


def echo(event, context):
    return event


def context_info(event, context):
    names = list(LAMBDA_VARIABLES) + list(event.get("variables", []))
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "environ": {name: os.environ.get(name) for name in names},
        "cwd": os.getcwd(),
        "client_custom": getattr(context.client_context, "custom", None),
    }


def counter(event, context):
    """Counts the invocations this environment served; sleeps first when asked to."""
    global COUNT
    COUNT += 1
    time.sleep(event.get("sleep", 0))
    return {"count": COUNT, "env_id": ENV_ID}


def sleepy(event, context):
    """Sleeps; reports when it ran by the host's wall clock (environments share it), so a test
    can tell whether invocations overlapped."""
    started = time.time()
    time.sleep(event.get("sleep", 1))
    return {"env_id": ENV_ID, "pid": os.getpid(), "started": started, "ended": time.time()}


def boom(event, context):
    raise ValueError("boom")


def chatty(event, context):
    """Prints a marker line, then `kb` lines of 1 KiB each."""
    print("chatty says", event["marker"])
    for i in range(event.get("kb", 0)):
        print("%04d" % i + "." * 1019)
    return "said"


def big(event, context):
    return "x" * event["bytes"]


def hog(event, context):
    """Touches `mb` MiB of memory, 8 MiB at a time (every page written, so all of it is resident)."""
    chunks = []
    for _ in range(event["mb"] // 8):
        chunks.append(b"\x01" * (8 << 20))
    return {"held_mb": 8 * len(chunks)}


def flavor(event, context):
    return os.environ.get("FLAVOR")
