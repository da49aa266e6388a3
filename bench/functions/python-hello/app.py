def handler(e, c):
    return {"hello": "world"}
