"""fcn-repro eval's command line: bad option values are refused before any work."""
from __future__ import annotations

import pytest


def test_cli_eval_limit_zero_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import fcn_repro.evaluate as ev
    from fcn_repro.cli import main
    monkeypatch.setattr(ev, "evaluate", lambda **kw: pytest.fail("eval ran with --limit 0"))
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"\x00" * 10)
    out = tmp_path / "metrics.json"
    rc = main(["eval", "--model", "voc-fcn8s", "--weights", str(weights), "--root", str(tmp_path),
               "--limit", "0", "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "--limit" in err

