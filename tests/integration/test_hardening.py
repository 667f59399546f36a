"""Every service runs hardened, as inspected through the engine (not as compose.yaml claims)."""

from __future__ import annotations

import pytest
from labserver.config import ServerConfig
from labstack import ComposeStack


@pytest.fixture(scope="module")
def inspected(stack: ComposeStack) -> dict[str, dict]:
    """The server as it runs, and a client container created (not started) from compose.yaml."""
    stack.compose("create", "--no-build", "--pull", "never", "client")
    found = {}
    for service in ("server", "client"):
        container = stack.containers(service)[0]
        container.reload()
        found[service] = container.attrs
    return found


SERVICES = ["server", "client"]


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root(inspected: dict, service: str) -> None:
    user = inspected[service]["Config"]["User"]
    assert user and user.split(":")[0] not in ("0", "root"), user


@pytest.mark.parametrize("service", SERVICES)
def test_root_filesystem_is_read_only(inspected: dict, service: str) -> None:
    assert inspected[service]["HostConfig"]["ReadonlyRootfs"] is True


@pytest.mark.parametrize("service", SERVICES)
def test_all_capabilities_dropped_and_no_new_privileges(inspected: dict, service: str) -> None:
    host = inspected[service]["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]


@pytest.mark.parametrize("service", SERVICES)
def test_pids_memory_and_nofile_limits(inspected: dict, service: str) -> None:
    host = inspected[service]["HostConfig"]
    assert 0 < host["PidsLimit"] <= 256
    assert 0 < host["Memory"] <= 256 << 20
    nofile = {u["Name"]: u for u in host["Ulimits"] or []}.get("nofile")
    # Sized to the connection cap: every connection is a descriptor, plus listeners and slack.
    assert nofile and nofile["Soft"] >= ServerConfig().max_connections + 64


@pytest.mark.parametrize("service", SERVICES)
def test_no_port_bound_to_all_interfaces(inspected: dict, service: str) -> None:
    bindings = inspected[service]["HostConfig"]["PortBindings"] or {}
    for port, binds in bindings.items():
        for bind in binds or []:
            assert bind["HostIp"] in ("127.0.0.1", "::1"), (port, bind)
    ports = inspected[service]["NetworkSettings"]["Ports"] or {}
    for port, binds in ports.items():
        for bind in binds or []:
            assert bind["HostIp"] not in ("", "0.0.0.0", "::"), (port, bind)


def test_server_process_really_is_unprivileged_and_cannot_write_root(stack: ComposeStack) -> None:
    server = stack.container("server")
    code, out = server.exec_run(["python3", "-c", "import os; print(os.getuid(), os.getgid())"])
    assert code == 0 and out.decode().split() == ["10001", "10001"]
    code, out = server.exec_run(["python3", "-c", "open('/probe', 'w')"])
    assert code != 0 and b"Read-only file system" in out
