"""Handler run by AWS's own Python runtime client (awslambdaric) in a provided.al2023 package."""


def handler(event, context):
    return {
        "hello": event.get("name"),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "client": "awslambdaric",
    }
