"""Every service runs hardened, as inspected through the engine (not as compose.yaml claims)."""

from __future__ import annotations

import io
import stat
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest
from docker.models.images import Image
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


def _root_entries(image: Image) -> list[int]:
    """The mode of the root directory (``./``) in each layer of ``image`` that records it."""
    modes = []
    with tarfile.open(fileobj=_Stream(image.save(named=False)), mode="r|") as saved:
        for member in saved:
            if not member.isfile():
                continue
            inner = saved.extractfile(member)
            try:
                with tarfile.open(fileobj=inner, mode="r|") as layer:
                    modes += [m.mode for m in layer if m.name in (".", "./", "/")]
            except tarfile.ReadError:
                continue  # the config and the manifest are JSON, not layers
    return modes


class _Stream(io.RawIOBase):
    """A file over the SDK's stream of chunks, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.rest = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.rest:
            self.rest = next(self.chunks, b"")
            if not self.rest:
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


def test_base_image_root_directory_is_0755(stack: ComposeStack) -> None:
    """The image's own ``/`` is 0755, in its layers, not only as this host's overlay shows it.

    debootstrap into ``mktemp -d`` once left it 0700: overlay drivers hide that, but on vfs (the
    cluster's Docker-in-Docker nodes) our non-root services could not exec python3.
    """
    # The server image holds the base's layers beneath its own.
    modes = _root_entries(stack.docker.images.get(f"sockets-lab/server:{stack.image_tag}"))
    assert modes, "no layer records the root directory"
    assert all(stat.S_IMODE(mode) == 0o755 for mode in modes), [oct(m) for m in modes]
    server = stack.container("server")
    code, out = server.exec_run(["stat", "-c", "%a", "/", "/usr", "/usr/bin/python3"])
    assert code == 0 and out.split()[:2] == [b"755", b"755"], out


STDLIB_COMPILED = """
import pathlib, sysconfig
from importlib.util import cache_from_source
stdlib = pathlib.Path(sysconfig.get_path("stdlib"))
sources = [p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts]
missing = [str(p) for p in sources if not pathlib.Path(cache_from_source(str(p))).exists()]
print(len(sources), len(missing), *missing[:5])
"""


@pytest.mark.parametrize("image", ["server", "client", "tools"])
def test_the_standard_library_is_byte_compiled_in_the_image(
    stack: ComposeStack, image: str
) -> None:
    """The root is read-only and bytecode is never written at run time, so a .pyc missing from
    the image is compiled again at every start: each client run, each health check."""
    output = stack.run_helper(
        image,
        ["-c", STDLIB_COMPILED],
        "listing the standard library's bytecode",
        entrypoint=["python3"],
        network_mode="none",
    )
    sources, missing, *names = output.split()
    assert int(sources) > 400 and int(missing) == 0, (sources, missing, names)
