"""The update benchmark runs end to end at tiny sizes (ours only: the reference is not vendored)."""

import json

import pytest

from dppo_robot.bench import update_vs_reference as bench


def test_ours_only_rows(tmp_path, capsys):
    out = tmp_path / "u.json"
    argv = ["--batch-size", "40", "--n-envs", "2", "--n-steps", "4", "--minibatches", "2", "--threads", "1"]
    assert bench.main([*argv, "--cpu-chunk-rows", "16", "0", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["reference"] is None and doc["buffer"] == "4x2x10" and doc["loss_agreement"] == {}
    assert set(doc["rows"]) == {"ours (cpu_chunk_rows=16)", "ours (cpu_chunk_rows=0)"}
    for r in doc["rows"].values():
        assert len(r["minibatch_wall_s"]) == 2 and r["samples_per_s"] == pytest.approx(
            40 / r["median_wall_s"], rel=1e-2
        )
        assert "speedup" not in r
    assert "| ours (cpu_chunk_rows=16) |" in capsys.readouterr().out


def test_reference_path_is_checked(tmp_path):
    with pytest.raises(SystemExit, match="no model/diffusion/diffusion_ppo.py"):
        bench.import_reference(tmp_path, [])
