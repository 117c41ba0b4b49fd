"""bench train runs end to end at tiny sizes and writes consistent rows."""

import argparse
import json

from dppo_robot.bench import train_throughput as bench


def test_quick_train_bench(tmp_path):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    out = tmp_path / "train.json"
    args = p.parse_args(
        [
            "--quick",
            "--backends",
            "process",
            "--step-tasks",
            "lift",
            "--task",
            "reach2d",
            "--workers",
            "0",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert bench.run(args) == 0
    doc = json.loads(out.read_text())
    coll = [r for r in doc["rows"] if r["kind"] == "collector"]
    backend = [r for r in doc["rows"] if r["kind"] == "collector_backend"]
    assert [(r["backend"], r["workers"]) for r in backend] == [("process", 1), ("process", 2)]
    upd = [r for r in doc["rows"] if r["kind"] == "ppo_update"]
    (step,) = [r for r in doc["rows"] if r["kind"] == "env_step"]
    assert step["task"] == "lift" and step["env_steps"] == 20 and step["substeps_per_step"] == 25  # 20 Hz over 2 ms
    # ratio = env time / raw time = raw rate / env rate (the rates are rounded to 0.1 step/s)
    assert abs(step["ratio"] - step["raw_steps_per_s"] / step["env_steps_per_s"]) < 0.01 * step["ratio"]
    assert [r["workers"] for r in coll] == [0, 1]
    assert all(0 < r["env_steps"] <= 2 * 8 * 4 and r["env_steps_per_s"] > 0 for r in coll)  # 2 chunks x 8 envs x Ta 4
    assert {r["config"] for r in upd} == {"square_mlp", "one_leg_mlp"}
    assert all(r["samples"] == r["minibatches"] * r["batch_size"] and r["samples_per_s"] > 0 for r in upd)
