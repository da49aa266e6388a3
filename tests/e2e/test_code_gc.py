"""Code garbage collection: packages that no function or version refers to are removed from the data directory;
a package in use (by $LATEST, a published version, or an upload on its way to its function record) never is."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

from conftest import ROLE, invoke, package_zip, unique_name

GC_ARGS = ("--code-gc-interval", "1", "--code-gc-grace", "0")
# Generous: a pass runs every second, but this machine is shared and may be slow.
DEADLINE_S = 60


def handler(tag: str) -> bytes:
    return package_zip({"app.py": f"def handler(e, c):\n    return {tag!r}\n"})


def hex_of(code_sha256: str) -> str:
    return base64.b64decode(code_sha256).hex()


def stored(data_dir: Path, address: str) -> bool:
    code = data_dir / "code"
    return (code / "zips" / f"{address}.zip").exists() or (code / "trees" / address).exists()


def wait_gone(data_dir: Path, addresses: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if not any(stored(data_dir, a) for a in addresses):
            return
        time.sleep(0.2)
    left = [a for a in addresses if stored(data_dir, a)]
    raise AssertionError(f"unreferenced packages still stored after {DEADLINE_S}s: {left}")


def create(lam, name: str, tag: str, **kwargs) -> str:
    r = lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": handler(tag)}, **kwargs)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return hex_of(r["CodeSha256"])


def answer(lam, name: str, **kwargs) -> str:
    got = invoke(lam, name, **kwargs)
    assert got.status == 200 and got.function_error is None, got
    return got.json()


def test_unreferenced_packages_are_collected_and_used_ones_kept(server_factory):
    srv = server_factory(extra_args=GC_ARGS)
    lam = srv.client()
    data = srv.data_dir
    f, g, h = unique_name("gcf"), unique_name("gcg"), unique_name("gch")
    version_code = create(lam, f, "f-one", Publish=True)  # $LATEST and version 1
    latest_code = hex_of(lam.update_function_code(FunctionName=f, ZipFile=handler("f-two"))["CodeSha256"])
    replaced = create(lam, g, "g-one")
    g_code = hex_of(lam.update_function_code(FunctionName=g, ZipFile=handler("g-two"))["CodeSha256"])
    deleted = create(lam, h, "h-one")
    lam.delete_function(FunctionName=h)

    wait_gone(data, [replaced, deleted])
    for address in (version_code, latest_code, g_code):
        assert stored(data, address), f"{address} is in use and was removed"
    assert answer(lam, f) == "f-two"
    assert answer(lam, f, Qualifier="1") == "f-one"
    assert answer(lam, g) == "g-two"
    # Code.Location of a version still serves its zip.
    assert lam.get_function(FunctionName=f, Qualifier="1")["Code"]["Location"]

    # Later passes go on keeping what is used: the function's own package goes only with the function.
    lam.delete_function(FunctionName=g)
    wait_gone(data, [g_code])
    for address in (version_code, latest_code):
        assert stored(data, address)
    assert answer(lam, f, Qualifier="1") == "f-one"
    assert "code gc: removed unreferenced packages" in srv.stderr()


def test_uploads_racing_the_collector_keep_their_packages(server_factory):
    """Functions created and updated while passes run every second: every package a function refers to stays."""
    srv = server_factory(extra_args=GC_ARGS)
    lam = srv.client()
    names = [unique_name("race") for _ in range(3)]
    errors: list[BaseException] = []

    def churn(name: str) -> None:
        try:
            local = srv.client()
            create(local, name, f"{name}-0")
            for i in range(1, 8):
                local.update_function_code(FunctionName=name, ZipFile=handler(f"{name}-{i}"))
                local.get_waiter("function_updated_v2").wait(FunctionName=name,
                                                             WaiterConfig={"Delay": 1, "MaxAttempts": 30})
                assert answer(local, name) == f"{name}-{i}"
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for name in names:
        address = hex_of(lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"])
        assert stored(srv.data_dir, address)
        assert answer(lam, name) == f"{name}-7"
