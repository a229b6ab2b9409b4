"""The sender's name for an SRE: ``hostname`` userdata or, with ``--reverse-dns``, the PTR record
of its address, in ``netconsole_host_info`` and as ``--output-dir DIR/by-name/NAME.log`` links
to the file named from the address."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender
from tests.listen.test_fleet import ext, metrics_port, scrape


def wait_link(path: Path, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.is_symlink():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return os.readlink(path)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_hostname_userdata_names_the_file_and_the_series(listen: Any, tmp_path: Path,
                                                         workers: str) -> None:
    out = tmp_path / "out"
    lst = listen("--quiet", "--output-dir", str(out), "--metrics", "127.0.0.1:0",
                 "--workers", workers)
    port = metrics_port(lst)
    Sender(lst.port).send(ext(1, b"hello", extra=b" hostname=web1\n"))
    assert wait_link(out / "by-name" / "web1.log") == os.path.join("..", "127.0.0.1.log")
    deadline = time.monotonic() + 15
    while 'netconsole_host_info{host="127.0.0.1",name="web1"} 1.0' not in scrape(port):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # another address claiming the name moves the link, never into the first one's file
    Sender(lst.port, "127.0.0.2").send(ext(1, b"impostor", extra=b" hostname=web1\n"))
    deadline = time.monotonic() + 15
    while os.readlink(out / "by-name" / "web1.log") != os.path.join("..", "127.0.0.2.log"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert lst.stop() == 0
    assert "impostor" not in (out / "127.0.0.1.log").read_text()
    assert "hello" in (out / "by-name" / "web1.log").resolve().with_name("127.0.0.1.log"
                                                                          ).read_text()
    assert sorted(p.name for p in out.glob("*.log")) == ["127.0.0.1.log", "127.0.0.2.log"]


def test_reverse_dns_names_hosts_that_do_not_name_themselves(listen: Any, tmp_path: Path
                                                            ) -> None:
    try:
        name = socket.gethostbyaddr("127.0.0.1")[0].rstrip(".")
    except OSError:
        pytest.skip("127.0.0.1 has no name on this machine")
    out = tmp_path / "out"
    lst = listen("--quiet", "--output-dir", str(out), "--metrics", "127.0.0.1:0",
                 "--workers", "1", "--reverse-dns")
    port = metrics_port(lst)
    s = Sender(lst.port)
    s.send(ext(1, b"first"))
    deadline = time.monotonic() + 15
    while f'netconsole_host_info{{host="127.0.0.1",name="{name}"}} 1.0' not in scrape(port):
        assert time.monotonic() < deadline, scrape(port)
        time.sleep(0.3)
    s.send(ext(2, b"the name is known by now"))  # the link comes with a message
    assert wait_link(out / "by-name" / f"{name}.log") == os.path.join("..", "127.0.0.1.log")
    assert lst.stop() == 0


def test_without_a_name_nothing_is_invented(listen: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lst = listen("--quiet", "--output-dir", str(out), "--metrics", "127.0.0.1:0",
                 "--workers", "1")
    port = metrics_port(lst)
    Sender(lst.port).send(ext(1, b"anonymous"))
    deadline = time.monotonic() + 15
    while 'netconsole_messages_total{host="127.0.0.1"} 1.0' not in scrape(port):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "netconsole_host_info{" not in scrape(port)
    assert lst.stop() == 0
    assert not (out / "by-name").exists()
