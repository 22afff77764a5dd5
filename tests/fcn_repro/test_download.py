"""The weights downloader against a local HTTP server (127.0.0.1, no outside network)."""
from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from caffe_import.errors import UsageError
from fcn_repro import download as D
from fcn_repro.cli import main as cli_main

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes
NAME = "fcn8s-heavy-pascal.caffemodel"


class Server:
    """Serves PAYLOAD at /<NAME>; behaviour switches: honour Range, truncate, fail."""

    def __init__(self) -> None:
        self.ranges = True
        self.truncate_at: int | None = None
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                outer.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if self.path.rstrip("/").split("/")[-1] != NAME:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.truncate_at is not None:
                    body = body[: max(0, outer.truncate_at - start)]
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.02),
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def fetch(server, tmp_path, **kw):
    return D.download_model("voc-fcn8s", base_url=server.url, cache_dir=tmp_path,
                            progress=False, timeout=10, **kw)


def test_downloads_the_models_published_file(server, tmp_path):
    path = fetch(server, tmp_path)
    assert path == tmp_path / NAME and path.read_bytes() == PAYLOAD
    assert not (tmp_path / (NAME + ".part")).exists()
    assert server.requests == [{"path": f"/models/{NAME}", "range": None}]


def test_present_file_is_not_fetched_again(server, tmp_path):
    fetch(server, tmp_path)
    fetch(server, tmp_path)
    assert len(server.requests) == 1
    fetch(server, tmp_path, force=True)
    assert len(server.requests) == 2


def test_truncated_transfer_keeps_the_part_and_resumes_with_range(server, tmp_path):
    server.truncate_at = 100_000
    with pytest.raises(D.DownloadError, match="got 100000 of 256000 bytes"):
        fetch(server, tmp_path)
    part = tmp_path / (NAME + ".part")
    assert part.stat().st_size == 100_000 and not (tmp_path / NAME).exists()
    server.truncate_at = None
    path = fetch(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=100000-"


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    (tmp_path / (NAME + ".part")).write_bytes(b"stale bytes that are not the file")
    server.ranges = False
    assert fetch(server, tmp_path).read_bytes() == PAYLOAD


def test_complete_part_is_finished_on_416(server, tmp_path):
    (tmp_path / (NAME + ".part")).write_bytes(PAYLOAD)
    assert fetch(server, tmp_path).read_bytes() == PAYLOAD


def test_http_errors_are_download_errors(server, tmp_path):
    with pytest.raises(D.DownloadError, match="HTTP 404"):
        D.download_url(server.url + "missing.caffemodel", tmp_path / "x.caffemodel", progress=False)
    assert not (tmp_path / "x.caffemodel").exists()


def test_base_url_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_BASE_URL, server.url)
    monkeypatch.setenv(D.ENV_CACHE, str(tmp_path / "cache"))
    assert D.default_cache_dir() == tmp_path / "cache"
    assert D.model_url("voc-fcn8s") == (server.url + NAME, NAME)
    path = D.download_model("voc-fcn8s", progress=False)
    assert path == tmp_path / "cache" / NAME and path.read_bytes() == PAYLOAD


def test_default_urls_are_the_published_ones(monkeypatch):
    monkeypatch.delenv(D.ENV_BASE_URL, raising=False)
    assert D.model_url("voc-fcn32s")[0] == "http://dl.caffe.berkeleyvision.org/fcn32s-heavy-pascal.caffemodel"
    assert D.model_url("vgg16")[0].endswith("/VGG_ILSVRC_16_layers.caffemodel")


def test_models_without_weights_and_odd_urls_are_refused(tmp_path):
    with pytest.raises(UsageError, match="published no weights"):
        D.model_url("nyud-fcn32s-color-d")
    with pytest.raises(UsageError, match="only http"):
        D.download_url("file:///etc/passwd", tmp_path / "x", progress=False)


def test_cli_verb(server, tmp_path, capsys):
    rc = cli_main(["download", "voc-fcn8s", "--base-url", server.url, "--cache-dir", str(tmp_path),
                   "--no-progress"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / NAME)
    server.truncate_at = 10
    rc = cli_main(["download", "voc-fcn8s", "--base-url", server.url, "--cache-dir",
                   str(tmp_path / "b"), "--no-progress"])
    assert rc == 1 and "run again to resume" in capsys.readouterr().err


def test_netspec_cli_writes_the_generated_file(tmp_path, capsys):
    out = tmp_path / "deploy.prototxt"
    assert cli_main(["netspec", "voc-fcn8s", "--net", "deploy", "-o", str(out)]) == 0
    from fcn_repro.zoo.render import render
    assert out.read_text() == render("voc-fcn8s", "deploy")
    assert cli_main(["netspec", "siftflow-fcn8s", "--net", "solver"]) == 0
    assert "base_lr: 1e-12" in capsys.readouterr().out
    assert cli_main(["netspec", "vgg16", "--net", "train"]) == 2
    assert os.listdir(tmp_path) == ["deploy.prototxt"]
