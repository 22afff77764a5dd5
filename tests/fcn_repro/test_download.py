"""The weights downloader against a local HTTP server (127.0.0.1, no outside network)."""
from __future__ import annotations

import os
import socket
import tempfile
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from caffe_import.errors import UsageError
from caffe_import.io import read_net
from fcn_repro import download as D
from fcn_repro.cli import main as cli_main

NAME = "tiny-heavy-pascal.caffemodel"
MODEL = "voc-tiny"
#: the deploy net of zoo model MODEL: one convolution, 75,000 weights
TINY_DEPLOY = """name: "tiny"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 1000 kernel_size: 5 } }
"""


def _caffemodel(weights: dict) -> bytes:
    from caffe_import.io import write_weights
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.caffemodel")
        write_weights(path, None, weights)
        with open(path, "rb") as fh:
            return fh.read()


_RNG = np.random.default_rng(0)
#: MODEL's published file: a caffemodel its deploy net takes (about 300 kB)
PAYLOAD = _caffemodel({"score": [_RNG.standard_normal((1000, 3, 5, 5)).astype(np.float32),
                                 _RNG.standard_normal(1000).astype(np.float32)]})


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    """Zoo model MODEL, published as NAME, whose deploy net is TINY_DEPLOY."""
    from fcn_repro import zoo
    from fcn_repro.zoo import registry
    from fcn_repro.zoo.spec import ModelSpec
    spec = ModelSpec(name=MODEL, family="voc", dataset="voc", num_classes=21, mean=(0.0, 0.0, 0.0),
                     weights_file=NAME, build=lambda kind: read_net(TINY_DEPLOY), nets=("deploy",))
    zoo.names()  # fill the registry before adding to it
    monkeypatch.setitem(registry._REGISTRY, MODEL, spec)
    return spec


class Server:
    """Serves ``payload`` (PAYLOAD unless changed) at /<NAME>; behaviour switches: honour
    Range, truncate, fail."""

    def __init__(self) -> None:
        self.payload = PAYLOAD
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
                payload = outer.payload
                rng = self.headers.get("Range")
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(payload):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(payload)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                else:
                    self.send_response(200)
                body = payload[start:]
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
    return D.download_model(MODEL, base_url=server.url, cache_dir=tmp_path,
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
    with pytest.raises(D.DownloadError, match=f"got 100000 of {len(PAYLOAD)} bytes"):
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
    assert D.model_url(MODEL) == (server.url + NAME, NAME)
    path = D.download_model(MODEL, progress=False)
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
    rc = cli_main(["download", MODEL, "--base-url", server.url, "--cache-dir", str(tmp_path),
                   "--no-progress"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / NAME)
    server.truncate_at = 10
    rc = cli_main(["download", MODEL, "--base-url", server.url, "--cache-dir",
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


@pytest.mark.parametrize("payload, why", [
    (os.urandom(300_000), "corrupt or truncated caffemodel"),
    (_caffemodel({"fc8": [np.zeros((2, 2), np.float32)]}), "have no weights in this file: score"),
    (_caffemodel({"score": [np.zeros((21, 3, 5, 5), np.float32), np.zeros(21, np.float32)]}),
     r"layer 'score'.*\(21, 3, 5, 5\)"),
], ids=["random-bytes", "another-nets-weights", "wrong-shapes"])
def test_a_file_that_is_not_the_models_caffemodel_never_lands(server, tmp_path, payload, why):
    """Any file with the right length used to be saved under the model's name; now the
    complete .part must parse as a caffemodel the model's deploy net takes, and is deleted
    (not resumed) when it does not."""
    server.payload = payload
    with pytest.raises(D.DownloadError, match=f"not what was asked for.*{why}"):
        fetch(server, tmp_path)
    assert os.listdir(tmp_path) == []
    server.payload = PAYLOAD
    assert fetch(server, tmp_path).read_bytes() == PAYLOAD  # starts over, from zero
    assert server.requests[-1]["range"] is None


def test_cli_download_of_a_wrong_file_fails_and_writes_nothing(server, tmp_path, capsys):
    server.payload = os.urandom(300_000)
    rc = cli_main(["download", MODEL, "--base-url", server.url, "--cache-dir", str(tmp_path),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "not what was asked for" in err and f"{tmp_path / NAME} not written" in err
    assert os.listdir(tmp_path) == []


def test_offline_the_error_says_what_to_do(tmp_path, monkeypatch):
    """No network: name the mirror option and where a file fetched by hand goes, not the
    resolver's '[Errno -2] Name or service not known'."""
    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(D.urllib.request, "urlopen", no_dns)
    with pytest.raises(D.DownloadError) as info:
        D.download_model(MODEL, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "[Errno" not in message
    assert message == (f"{D.DEFAULT_BASE_URL}{NAME}: cannot reach dl.caffe.berkeleyvision.org (Name or "
                       "service not known). Are you offline? Fetch it from a mirror with --base-url URL "
                       f"(or ${D.ENV_BASE_URL}), or download {D.DEFAULT_BASE_URL}{NAME} by hand and put "
                       f"it at {D.weights_path(MODEL, tmp_path)}")


def test_a_host_that_refuses_the_connection_gets_the_same_advice(tmp_path):
    with socket.socket() as s:  # a port on this machine that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/models/"
    with pytest.raises(D.DownloadError, match=(rf"cannot reach 127.0.0.1:{port} \(Connection refused\)"
                                               rf".*--base-url.*put it at {tmp_path / NAME}$")):
        D.download_model(MODEL, base_url=url, cache_dir=tmp_path, progress=False, timeout=5)
